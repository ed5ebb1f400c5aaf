"""Stream URL policy, including a crafted HLS playlist that names a file on disk."""

from __future__ import annotations

import pytest

from pipeline.ingest.source import FFmpegSource, IngestError, Sampling
from pipeline.ingest.urls import UnsafeURL, check_url, playlist_uris
from tests.ingest.conftest import make_video


@pytest.mark.parametrize(
    ("url", "allow_files", "message"),
    [
        ("file:///etc/passwd", False, "local files are not allowed"),
        ("/tmp/clip.mp4", False, "local files are not allowed"),
        ("concat:a.mp4|b.mp4", False, "not allowed"),
        ("subfile,,start,0,end,10,,:/etc/passwd", False, "not allowed"),
        ("data:video/mp4;base64,AAAA", False, "not allowed"),
        ("gopher://example.org/1", False, "not allowed"),
        ("rtmp:///live/x", False, "no host"),
    ],
)
def test_refused(url, allow_files, message):
    with pytest.raises(UnsafeURL, match=message):
        check_url(url, allow_files=allow_files)


@pytest.mark.parametrize(
    ("url", "whitelist", "fmt"),
    [("rtmp://127.0.0.1/live/s1", "rtmp,tcp", "flv"), ("rtmps://127.0.0.1/live/s1", "rtmps,tls,tcp", "flv")],
)
def test_rtmp_options(url, whitelist, fmt):
    checked = check_url(url)
    assert checked.input_args["protocol_whitelist"] == whitelist and checked.input_args["f"] == fmt
    assert "file" not in checked.input_args["protocol_whitelist"].split(",")


def test_local_files_when_allowed(tmp_path):
    checked = check_url(str(tmp_path / "a.mp4"), allow_files=True)
    assert checked.local and checked.input_args == {"protocol_whitelist": "file"}


def test_playlist_uris():
    text = '#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="key.bin"\n#EXTINF:2,\nseg0.ts\n\n#EXTINF:2,\nseg1.ts\n'
    assert playlist_uris(text) == ["key.bin", "seg0.ts", "seg1.ts"]


def test_hls_playlist_naming_a_local_file_is_refused(http_dir, tmp_path_factory):
    root, base = http_dir
    secret = tmp_path_factory.mktemp("secret") / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-42\n")
    (root / "evil.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    with pytest.raises(UnsafeURL, match="outside http") as err:
        check_url(f"{base}/evil.m3u8")
    assert "TOP-SECRET" not in str(err.value)


def test_ffmpeg_whitelist_blocks_local_file_even_unchecked(http_dir, tmp_path_factory, capfd):
    """Defence in depth: with the playlist check skipped, ffmpeg's whitelist still refuses the file."""
    root, base = http_dir
    secret_dir = tmp_path_factory.mktemp("secret")
    clip = secret_dir / "secret.ts"
    make_video(clip, seconds=2, fps=10, gop=10, size="64x64", extra=("-f", "mpegts"))
    (root / "evil.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{clip}\n#EXT-X-ENDLIST\n")
    args = {"protocol_whitelist": "http,tcp,crypto", "f": "hls"}
    frames = []
    with pytest.raises(IngestError), FFmpegSource(f"{base}/evil.m3u8", "evil", Sampling("all"), args) as src:
        frames.extend(src)
    assert frames == []
