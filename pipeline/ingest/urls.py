"""Which stream URLs may be opened, and with which ffmpeg input options.

Stream URLs come from outside (a platform's API, an operator), so they are untrusted: only
allowed schemes pass; each gets ffmpeg's ``protocol_whitelist`` for its scheme and a forced input
format, so a remote source can never make ffmpeg read ``file``, ``concat``, ``subfile`` or
``data``; an HLS playlist naming anything but http(s) segments is refused before ffmpeg sees it.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from dataclasses import dataclass


class UnsafeURL(ValueError):
    """A stream URL that policy refuses; the message says why (never the URL's content)."""


# scheme -> (ffmpeg protocol whitelist, forced input format)
REMOTE: dict[str, tuple[str, str]] = {
    "rtmp": ("rtmp,tcp", "flv"),
    "rtmps": ("rtmps,tls,tcp", "flv"),
    "http": ("http,tcp,crypto", "hls"),
    "https": ("https,http,tls,tcp,crypto", "hls"),
}


@dataclass(frozen=True)
class StreamURL:
    """A checked stream URL and the ffmpeg input options that keep it to its scheme."""

    url: str
    scheme: str
    input_args: dict[str, str]

    @property
    def local(self) -> bool:
        return self.scheme == "file"


def check_url(url: str, allow_files: bool = False, timeout: float = 5.0) -> StreamURL:
    """Check ``url`` against the policy and return it with its ffmpeg input options.

    Raises:
        UnsafeURL: for a scheme not allowed, a malformed URL, or an HLS playlist that points
            at anything but http(s) segments.
    """
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if not scheme or (len(scheme) == 1 and url[1:2] == ":"):
        if not allow_files:
            raise UnsafeURL("local files are not allowed by this configuration")
        return StreamURL(url, "file", {"protocol_whitelist": "file"})
    if scheme == "file":
        if not allow_files:
            raise UnsafeURL("local files are not allowed by this configuration")
        return StreamURL(parsed.path, "file", {"protocol_whitelist": "file"})
    if scheme not in REMOTE:
        raise UnsafeURL(f"scheme {scheme!r} is not allowed (allowed: {', '.join(REMOTE)})")
    if not parsed.hostname:
        raise UnsafeURL("the URL names no host")
    whitelist, fmt = REMOTE[scheme]
    # One decoder thread per stream: a worker runs hundreds of decoders side by side, and each
    # frame-threaded decoder would hold a set of 720p frames per thread (about 140 MB at 2 cores).
    args = {"protocol_whitelist": whitelist, "f": fmt, "rw_timeout": "10000000", "threads": "1"}
    if fmt == "hls":
        check_playlist(url, timeout)
    else:
        # Live FLV: start decoding after half a second of probing instead of five, unbuffered.
        args |= {"analyzeduration": "500000", "probesize": "500000", "fflags": "nobuffer"}
    return StreamURL(url, scheme, args)


_URI_ATTR = re.compile(r'URI="([^"]*)"')


def playlist_uris(text: str) -> list[str]:
    """Every URI an HLS playlist names: segment lines and ``URI="..."`` attributes."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            uris.extend(_URI_ATTR.findall(line))
        else:
            uris.append(line)
    return uris


def check_playlist(url: str, timeout: float = 5.0, max_bytes: int = 1 << 20) -> None:
    """Refuse an HLS playlist whose entries resolve to anything but http(s) on the network."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read(max_bytes).decode("utf-8", "replace")
    except OSError:
        return  # unreachable now: ffmpeg's own whitelist still applies when it connects
    for uri in playlist_uris(text):
        target = urllib.parse.urlparse(urllib.parse.urljoin(url, uri))
        if target.scheme.lower() not in ("http", "https") or not target.hostname:
            raise UnsafeURL("the HLS playlist points outside http(s) (a local file or another protocol)")
