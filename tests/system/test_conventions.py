"""Static checks of the conventions common/include/of_status.h and
of_time.h write down, over every C source of common/, services/ and tools/
(no servers needed).

- Every function that returns an of_status is marked OF_MUST_CHECK, on its
  declaration in a header or, for a static function, on its definition (or
  a forward declaration): a transient, permanent or fatal failure is never
  dropped silently. GCC's warn_unused_result is not silenced by a (void)
  cast, so a deliberate "best effort" call assigns the result and says why.
- Every timed wait goes through of_time's monotonic deadline helper: no
  pthread_cond_timedwait and no CLOCK_REALTIME outside of_time.c/.h
  (a wall-clock step would make such a wait sleep too long or spin).
"""

from __future__ import annotations

import re

from harness.util import REPO_ROOT

C_DIRS = [REPO_ROOT / "common", REPO_ROOT / "services", REPO_ROOT / "tools"]

# "of_status name(" at the start of a line, optionally static and/or
# already marked.
_PROTO = re.compile(
    r"^(?:static\s+)?(?:OF_MUST_CHECK\s+)?(?:static\s+)?of_status\s+\**([a-z_][a-z0-9_]*)\s*\(",
    re.M)


def _sources():
    for d in C_DIRS:
        yield from sorted(d.rglob("*.[ch]"))


def _declarations(text: str):
    """(name, line, declaration text up to its ';' or '{')."""
    for m in _PROTO.finditer(text):
        i, depth = m.end() - 1, 0
        while i < len(text):
            c = text[i]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and c in ";{":
                break
            i += 1
        yield m.group(1), text.count("\n", 0, m.start()) + 1, text[m.start():i + 1]


def test_every_of_status_function_is_must_check():
    decls = []
    for f in _sources():
        rel = f.relative_to(REPO_ROOT)
        for name, line, decl in _declarations(f.read_text(errors="replace")):
            decls.append((f"{rel}:{line}", name, "OF_MUST_CHECK" in decl))
    assert len(decls) > 100, "the scan found too few functions: is the pattern still right?"
    checked = {name for _, name, marked in decls if marked}
    missing = sorted(f"{where}: {name}" for where, name, marked in decls
                     if not marked and name not in checked)
    assert not missing, "functions returning of_status without OF_MUST_CHECK:\n  " + "\n  ".join(missing)


def test_timed_waits_use_the_monotonic_helper():
    found = []
    for f in _sources():
        rel = str(f.relative_to(REPO_ROOT))
        if rel in ("common/src/of_time.c", "common/include/of_time.h"):
            continue
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            code = line.split("//", 1)[0]
            if re.search(r"\bpthread_cond_timedwait\s*\(|\bCLOCK_REALTIME\b", code):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, ("timed waits outside of_time's monotonic helper "
                       "(use of_cond_init_mono + of_cond_wait_until):\n  " + "\n  ".join(found))
