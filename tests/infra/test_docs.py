"""The documentation against the tree: no torch, no built extension.

* docs/configuration.md lists every CONV1D_EXT_* variable the code reads (environment variables and
  preprocessor switches), and nothing the code does not read.
* Every repository path README.md and docs/*.md name exists: links `[text](path)` (relative to the
  document) and backticked paths under a top-level folder of the project, or a top-level file (relative
  to the repository root; globs and `{a,b}` alternatives match at least one path).
"""

import ast
import glob
import itertools
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
THIS = pathlib.Path(__file__).resolve()

NAME = r"CONV1D_EXT_[A-Z0-9_]*[A-Z0-9]"
SOURCE_SUFFIXES = {".py", ".cpp", ".h", ".cu", ".cuh", ".sh"}
SOURCE_NAMES = {"Makefile", ".ci/run"}
# Paths a document may name that are made by running things, not tracked.
GENERATED = ("benchmarks/out", "build", ".venv", ".venv-edge", ".emu_build", ".hypothesis")
PATH_PREFIXES = ("csrc/", "conv1d_ext/", "tests/", "benchmarks/", "docs/", ".ci/")


def repository_files():
    """The tree's files, relative to ROOT: git's tracked and untracked-but-not-ignored files in a
    checkout, else every file under ROOT (an unpacked copy)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True).stdout
        files = [pathlib.Path(line) for line in out.splitlines() if line]
        if files:
            return [f for f in files if (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        pass
    skip = {".git", "build", ".venv", ".venv-edge", ".emu_build", "__pycache__", ".hypothesis", ".pytest_cache"}
    files = (p.relative_to(ROOT) for p in ROOT.rglob("*") if p.is_file())
    return [f for f in files if not skip.intersection(f.parts) and not f.as_posix().startswith("benchmarks/out/")]


def source_files():
    for rel in repository_files():
        if rel.parts[0] == "docs" or (ROOT / rel).resolve() == THIS:
            continue
        if rel.suffix in SOURCE_SUFFIXES or rel.as_posix() in SOURCE_NAMES:
            yield rel


def _strip_c_comments(text):
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def _names_in_python(text):
    """Names in string constants that are exactly a name (os.environ.get("X"), environ["X"], getenv("X"),
    setdefault, pop), keyword arguments (dict(os.environ, X=...)), and -DX compiler flags."""
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(NAME, node.value):
                names.add(node.value)
            names.update(re.findall(r"-D(" + NAME + ")", node.value))
        elif isinstance(node, ast.keyword) and node.arg and re.fullmatch(NAME, node.arg):
            names.add(node.arg)
    return names


def _names_in_cxx(text):
    """Names read through a string literal (std::getenv("X") or a helper taking the name) and names that
    preprocessor conditionals test (#if / #ifdef / #ifndef / #elif), include guards aside."""
    code = _strip_c_comments(text)
    names = set(re.findall(r'"(' + NAME + ')"', code))
    for line in re.findall(r"^\s*#\s*(?:if|ifdef|ifndef|elif)\b[^\n]*", code, flags=re.M):
        names.update(n for n in re.findall(NAME, line) if not n.endswith("_H"))
    return names


def _names_in_shell(text):
    """Every name outside comments (assignments, exports, $X, env -u X)."""
    code = "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in text.splitlines())
    return set(re.findall(NAME, code))


def names_read_by_the_code():
    """{name: [files]} of the CONV1D_EXT_* variables the sources read."""
    found = {}
    for rel in source_files():
        text = (ROOT / rel).read_text(errors="replace")
        if rel.suffix == ".py":
            names = _names_in_python(text)
        elif rel.suffix in {".cpp", ".h", ".cu", ".cuh"}:
            names = _names_in_cxx(text)
        else:
            names = _names_in_shell(text)
        for name in names:
            found.setdefault(name, []).append(rel.as_posix())
    return found


def names_in_the_table():
    """The CONV1D_EXT_* names in the first column of docs/configuration.md's table."""
    names = set()
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            names.update(re.findall(r"`(" + NAME + r")`", first))
    return names


def test_configuration_table_lists_exactly_the_variables_the_code_reads():
    read = names_read_by_the_code()
    listed = names_in_the_table()
    assert read, "found no CONV1D_EXT_* variable in the sources: the scan is broken"
    missing = {name: files for name, files in sorted(read.items()) if name not in listed}
    assert not missing, f"read by the code but not in docs/configuration.md's table: {missing}"
    unread = sorted(listed - set(read))
    assert not unread, f"in docs/configuration.md's table but read by nothing: {unread}"


def documents():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _expand_braces(token):
    """a/{b,c}.h -> [a/b.h, a/c.h] (nested alternatives too)."""
    m = re.search(r"\{([^{}]*)\}", token)
    if not m:
        return [token]
    return list(itertools.chain.from_iterable(
        _expand_braces(token[:m.start()] + alt + token[m.end():]) for alt in m.group(1).split(",")))


def _exists(path):
    """path (relative to ROOT, posix) exists; a glob must match something."""
    if any(c in path for c in "*?["):
        return bool(glob.glob(str(ROOT / path), recursive=True))
    return (ROOT / path).exists()


def _top_level_files():
    return {rel.as_posix() for rel in repository_files() if len(rel.parts) == 1}


def named_paths(doc):
    """(line number, path relative to ROOT or None when it leaves the tree, as written) of every path
    `doc` names."""
    text = doc.read_text()
    top = _top_level_files()
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for number, line in enumerate(prose.splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same document
            resolved = (doc.parent / target.split("#")[0]).resolve()
            try:
                yield number, resolved.relative_to(ROOT).as_posix(), target
            except ValueError:
                yield number, None, target
        for span in re.findall(r"`([^`\n]+)`", line):
            for token in span.split():
                token = token.split("::")[0].rstrip(":,;.")
                looks_like_a_path = token.startswith(PATH_PREFIXES) or token in top
                if not looks_like_a_path or token.startswith(GENERATED):
                    continue
                for alternative in _expand_braces(token):
                    yield number, alternative.rstrip("/"), token


def test_every_path_the_docs_name_exists():
    missing = []
    for doc in documents():
        for number, path, written in named_paths(doc):
            if path is None or not _exists(path):
                missing.append(f"{doc.relative_to(ROOT)}:{number}: {written}")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


def test_the_path_scan_sees_the_readme():
    """The scan above reads something: the README names at least the docs it links."""
    paths = {path for _, path, _ in named_paths(ROOT / "README.md")}
    assert "docs/configuration.md" in paths
