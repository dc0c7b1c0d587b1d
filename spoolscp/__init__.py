"""spoolscp: a durable, multiprocess drop-in replacement for DCMTK storescp.

The pieces shared by the receiver and the workers live here: the command line entry
(``spoolscp.cli``), the settings (``spoolscp.settings``), the spool contract
(``spoolscp.spool``) and the job table (``spoolscp.jobs``).
"""

__version__ = "0.1.0"
