"""Which W&B mode a run gets: online, offline or disabled, decided before wandb is asked anything.

An online `wandb.init` without a key prompts for a login (a hung SLURM job), so the key is looked for first, without
the network and without prompting; WANDB_MODE can lower an explicit mode but never raise it.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from koopsweep.errors import ConfigError

MODES = ("online", "offline", "disabled", "auto")
"""logger.mode's choices (checked by koopsweep.config.checks)."""

_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
_RANK = {"disabled": 0, "offline": 1, "online": 2}
# W&B's default API hosts (0.31 defaults to the Forge proxy, older keys are stored for api.wandb.ai).
_DEFAULT_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")


def _netrc_path(env: Mapping[str, str]) -> Path:
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    for name in (".netrc", "_netrc"):
        if (home / name).exists():
            return home / name
    return home / ".netrc"


def api_key_source(env: Mapping[str, str] | None = None, *, consult_wandb: bool = True) -> str | None:
    """Where a W&B API key would come from (a short label), or None. Never prompts, never uses the network.

    Checks WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the netrc file (NETRC or ~/.netrc) for the W&B host, then,
    if `consult_wandb`, wandb's own session and settings files (a key saved by `wandb login`).
    """
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY", "").strip():
        return "WANDB_API_KEY"
    if env.get("WANDB_IDENTITY_TOKEN_FILE", "").strip():
        return "WANDB_IDENTITY_TOKEN_FILE"
    base_url = env.get("WANDB_BASE_URL", "").strip()
    hosts = (urlsplit(base_url).netloc,) if base_url else _DEFAULT_HOSTS
    path = _netrc_path(env)
    try:
        entries = netrc.netrc(str(path))
        for host in filter(None, hosts):
            auth = entries.authenticators(host)
            if auth and auth[2]:
                return str(path)
    except (OSError, netrc.NetrcParseError):
        pass
    if consult_wandb:
        try:  # private API, hence guarded: same lookup as wandb.api.api_key, without its deprecation warning
            from wandb.sdk import wandb_setup
            from wandb.sdk.lib import wbauth

            settings = wandb_setup.singleton().settings
            if (
                wbauth.session_credentials(host=settings.base_url)
                or settings.api_key
                or wbauth.read_netrc_auth(host=settings.base_url)
            ):
                return "wandb settings"
        except Exception:
            pass
    return None


def resolve_mode(
    mode: str, env: Mapping[str, str] | None = None, *, consult_wandb: bool = True
) -> tuple[str, str | None]:
    """Resolve `online | offline | disabled | auto` to a wandb mode, plus the reason for a fallback (or None).

    WANDB_MODE decides `auto` and can lower (never raise) an explicit mode, so CI's WANDB_MODE=disabled always wins
    (wandb itself lets an explicit `mode=` argument beat the variable). Online without a key falls back to offline.
    """
    if mode not in MODES:
        raise ConfigError(f"logger.mode={mode!r} is not one of {', '.join(MODES)}")
    env = os.environ if env is None else env
    raw = env.get("WANDB_MODE", "").strip().lower()
    env_mode = _ENV_MODES.get(raw)
    if raw and env_mode is None:
        raise ConfigError(f"WANDB_MODE={raw!r} is not one of online, offline, disabled")
    if mode == "auto":
        wanted = env_mode or "online"
    else:
        wanted = mode if env_mode is None or _RANK[env_mode] >= _RANK[mode] else env_mode
    if wanted != "online":
        return wanted, None
    if api_key_source(env, consult_wandb=consult_wandb) is None:
        return "offline", "no W&B API key found (WANDB_API_KEY, ~/.netrc or `wandb login`)"
    return "online", None
