"""Argument parsing for subcommands whose every mistake is one line: ``koopsweep: error: ...``, exit code 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

from koopsweep.errors import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """argparse without the usage block on errors: a bad argument raises ConfigError, which the CLI prints."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog.removeprefix('koopsweep ')}: {message} (see {self.prog} --help)")
