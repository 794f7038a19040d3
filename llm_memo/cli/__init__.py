"""The ``llm-memo`` command: look into and manage a cache on any backend URL.

``llm-memo COMMAND [-b URL] [--json] ...`` (also ``python -m llm_memo``):

==========  ========================================================================================
``stats``   entries, bytes and expired entries, by namespace and by function
``ls``      the entries, filtered by ``--namespace``, ``--function`` (a glob), ``--older-than``,
            ``--newer-than``
``show``    one entry: its metadata and its value as JSON (never restored as a type, never
            unpickled)
``rm``      delete entries by key
``purge``   delete ``--expired`` entries, entries ``--older-than 7d``, a ``--namespace``, a
            ``--function``, or ``--all``; ``--dry-run`` lists them
``copy``    copy a cache to another backend (disk to S3, say), resumable: keys already at the
            destination are skipped; a progress bar on stderr
``explain`` why two recorded calls have different keys (recording files, or keys in a
            ``recordings://`` folder)
==========  ========================================================================================

``-b`` takes any backend URL (``disk:///path`` or a bare path, ``file:///path``,
``s3://bucket/prefix``, ``redis://host:6379/0``, ...) or ``recordings://path`` for a folder of
test recordings; the default is ``LLM_MEMO_BACKEND``, else the embedded disk cache.
``-o name=value`` passes an option to the backend's ``from_url`` (dotted names nest:
``-o storage_options.endpoint_url=http://localhost:9000``; values are JSON when they parse).

Listing commands need a backend with ``keys(prefix)`` (the
:class:`~llm_memo.backends.Listing` protocol); others get a clear error.

No command creates a store: every command but ``copy``'s destination first checks that the
cache is there (a disk cache's ``cache.db``, a ``file://`` or ``recordings://`` folder, objects
under an object store's prefix), else it stops with "no cache at ...". ``purge`` deletes by age
or expiry only entries it can read and judge; the others are kept and counted as skipped.

Human-readable output by default; ``--json`` prints one JSON document for scripts.
Exit codes: 0 done; 1 not found or nothing matched ("no cache at ..." included); 2 usage error
(bad arguments or URL, an option the backend does not take, a backend that cannot list); 3 the
backend failed.

The package, one room per concern: ``_args.py`` (the argparse tree, durations, ``-o``
options), ``_store.py`` (opening ``-b URL`` without creating a store, selecting entries, the
expiry judgement), ``_commands.py`` (what each subcommand does) and ``_output.py`` (exit codes,
human and JSON output, the progress bar). This module only dispatches.

Not here: anything the library needs at run time; this package is only imported by the command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import BackendError, ConfigurationError
from ._args import build_parser, options
from ._commands import ON_BACKEND, cmd_copy, cmd_explain
from ._output import BACKEND, USAGE, Exit, Out
from ._store import close_backend, open_backend

__all__ = ["main"]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``llm-memo`` command; return its exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        stdout / stderr: where output goes (default: the process's).

    .. versionadded:: 0.1.0
    """
    out_stream = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    out = Out(args.json, out_stream)

    def fail(code: int, message: str) -> int:
        print(f"llm-memo: {message}", file=err)
        return code

    try:
        if args.command == "copy":
            return cmd_copy(args, out, err)
        if args.command == "explain":
            return cmd_explain(args, out)
        run = ON_BACKEND[args.command]
        backend = open_backend(args.backend, options(args.option))
        try:
            return run(args, backend, out)
        finally:
            close_backend(backend)
    except Exit as exc:
        return fail(exc.code, str(exc))
    except ConfigurationError as exc:  # a bad URL or option, a missing extra
        return fail(USAGE, str(exc))
    except BackendError as exc:
        return fail(BACKEND, f"backend error: {exc}")
    except KeyboardInterrupt:
        return fail(130, "interrupted")
