"""fakewatch: flags suspected counterfeit brand marks in livestream video."""

__version__ = "0.1.0"
