"""The storescp command line: DCMTK 3.6.9 option spellings resolved into one typed object.

Every field below mirrors one storescp option (spec §1.2). The parser fills it following
DCMTK's OFCommandLine rules (rightmost option wins, ``@file`` expansion, the §1.4 checks).

>>> opts = parse_args(["-od", "out", "+xa", "11112"])
>>> opts.port, opts.output_directory, opts.prefer
(11112, 'out', 'accept-all')
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StorescpOptions:
    """storescp's options after parsing; defaults are DCMTK's."""

    port: int | None = None
    # general
    log_level: str = "warn"  # fatal|error|warn|info|debug|trace (-q/-v/-d/-ll)
    log_config: str | None = None
    arguments: bool = False
    verbose_pc: bool = False
    # multi-process
    fork: bool = False
    # network
    inetd: bool = False
    config_file: tuple[str, str] | None = None  # (file, profile)
    prefer: str = "uncompr"  # long name suffix: uncompr|little|big|lossless|jpeg8|...|deflated|implicit|accept-all
    access_control: bool = False
    socket_timeout: int = 60
    acse_timeout: int = 30
    dimse_timeout: int | None = None
    aetitle: str = "STORESCP"
    max_pdu: int = 16384
    disable_host_lookup: bool = False
    refuse: bool = False
    reject: bool = False
    ignore: bool = False
    sleep_after: int = 0
    sleep_during: int = 0
    abort_after: bool = False
    abort_during: bool = False
    promiscuous: bool = False
    uid_padding: bool = False
    # output
    output_directory: str = "."
    bit_preserving: bool = False
    write_file: bool = True
    write_xfer: str = "same"  # same|little|big|implicit|deflated
    enable_new_vr: bool = True
    group_length: str = "recalc"  # recalc|create|remove
    length_explicit: bool = True
    padding: tuple[int, int] | None = None  # (file, item) from +p f i
    convert_un: bool = False
    compression_level: int = 6
    sort: str | None = None  # conc|uid|patient
    sort_prefix: str = ""
    unique_filenames: bool = False
    timenames: bool = False
    filename_extension: str = ""
    # events
    exec_on_reception: str | None = None
    exec_on_eostudy: str | None = None
    rename_on_eostudy: bool = False
    eostudy_timeout: int | None = None
    exec_sync: bool = False
    # spoolscp's own options (not in DCMTK)
    config: str | None = None
    state_dir: str | None = None
    workers: int | None = None
    # long names of every option given, after resolution (for "not supported yet" checks)
    given: set[str] = field(default_factory=set)
