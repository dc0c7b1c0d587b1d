"""Placeholder entry point replaced as the CLI lands."""
def main() -> int:
    raise SystemExit("spoolscp: CLI not built yet")
