"""TorchScript is code: read it before running it.

``torch.jit.load`` runs a module's ``__setstate__`` while loading, and ``forward`` can call
any op TorchScript knows, including ``torch.from_file`` (which reads and even creates
files). A bundle from a model zoo should not get the user's disk, so before loading we
read the archive's serialized source (``code/**/*.py``, plain TorchScript text), list
every ``torch.*`` / ``ops.<namespace>.*`` call and custom class it uses, and refuse:

- ops that touch files, processes or the network (:data:`FORBIDDEN_OPS`), anywhere:
  ``forward``, ``__setstate__``, helper methods, submodules;
- op namespaces outside the compute ones (:data:`ALLOWED_NAMESPACES`): torchvision's
  ``image`` namespace reads files, custom C++ extensions can do anything;
- custom TorchScript classes bound from C++ (``torch.classes.*``).

This is a static reading of the archive, done without loading it. A user who trusts a
model can still run it with ``trust_code=True`` (``--trust-code`` on the command line);
safetensors or weights-only state dicts with a known architecture need no trust at all
and are the recommended format (docs/model-bundles.md).
"""

from __future__ import annotations

import io
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from omicslens.models.errors import WeightsError

#: aten / torch ops that read, write or map files, or otherwise leave the tensor world.
FORBIDDEN_OPS = frozenset(
    {
        "from_file",
        "save",
        "load",
        "_load_for_lite_interpreter",
        "read_file",
        "write_file",
        "_nested_from_file",
    }
)
#: ``ops.<namespace>`` a compute graph may use (aten: tensor ops; prim: the interpreter's
#: control flow; quantized: int8 kernels; torchvision: nms/roi_align for detectors).
ALLOWED_NAMESPACES = frozenset({"aten", "prim", "quantized", "torchvision", "_caffe2"})
MAX_CODE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class CodeFinding:
    file: str
    line: int
    name: str
    why: str

    def describe(self) -> str:
        return f"{self.name} ({self.why}) in {self.file} line {self.line}"


class UntrustedCodeError(WeightsError):
    """A TorchScript archive uses ops that can touch the disk or run other code."""

    def __init__(self, path: Path, findings: list[CodeFinding]) -> None:
        self.findings = findings
        shown = "; ".join(f.describe() for f in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        super().__init__(
            path,
            f"refused to run this TorchScript model: it calls {shown}{more}. Nothing was "
            "loaded or run. Re-export the model as safetensors with a known architecture, or "
            "run it anyway if you trust its author (--trust-code; trust_code=True)",
        )


#: what a damaged zip member raises while it is read: a bad CRC or header (BadZipFile), a
#: corrupt deflate stream (zlib.error), a short member (EOFError), an unknown compression
#: method (NotImplementedError), an encrypted member (RuntimeError)
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    KeyError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


def inspect_torchscript(path: str | Path) -> list[CodeFinding]:
    """Every forbidden call in the archive's TorchScript source (empty list: clean)."""
    path = Path(path)
    findings: list[CodeFinding] = []
    try:
        with zipfile.ZipFile(path) as archive:
            sources = [n for n in archive.namelist() if "/code/" in n and n.endswith(".py")]
            total = 0
            for name in sources:
                info = archive.getinfo(name)
                total += info.file_size
                if total > MAX_CODE_BYTES:
                    raise WeightsError(path, "TorchScript source larger than 64 MiB; refused")
                text = archive.read(name).decode("utf-8", errors="replace")
                findings += _scan(name.split("/code/", 1)[1], text)
    except ARCHIVE_ERRORS as error:
        raise WeightsError(path, f"not a readable TorchScript archive: {error}") from error
    return findings


def check_torchscript(path: str | Path, trust_code: bool = False) -> None:
    """Raise :class:`UntrustedCodeError` for a forbidden call, unless ``trust_code``."""
    if trust_code:
        return
    findings = inspect_torchscript(path)
    if findings:
        raise UntrustedCodeError(Path(path), findings)


def _scan(file: str, text: str) -> list[CodeFinding]:
    found: list[CodeFinding] = []
    names = _dotted_names(text)
    if names is None:  # fail closed: source we cannot read is source we cannot vouch for
        return [CodeFinding(file, 0, "<unparsable source>", "cannot be inspected")]
    for line, dotted in names:
        parts = dotted.split(".")
        if parts[0] == "torch" and len(parts) >= 2:
            if parts[1] == "classes":
                found.append(CodeFinding(file, line, dotted, "custom C++ class"))
            elif parts[1] == "ops" and len(parts) >= 3:
                found += _op(file, line, dotted, parts[2], parts[-1])
            elif parts[-1] in FORBIDDEN_OPS:
                found.append(CodeFinding(file, line, dotted, "touches files or processes"))
        elif parts[0] == "ops" and len(parts) >= 2:
            found += _op(file, line, dotted, parts[1], parts[-1])
        elif parts[0] == "__torch__" and "classes" in parts[1:3] and parts[1] == "torch":
            found.append(CodeFinding(file, line, dotted, "custom C++ class"))
    return found


def _op(file: str, line: int, dotted: str, namespace: str, op: str) -> list[CodeFinding]:
    if namespace not in ALLOWED_NAMESPACES:
        return [CodeFinding(file, line, dotted, f"op namespace '{namespace}' is not compute")]
    if op in FORBIDDEN_OPS:
        return [CodeFinding(file, line, dotted, "touches files or processes")]
    return []


def _dotted_names(text: str) -> list[tuple[int, str]] | None:
    """(line, ``a.b.c``) for every dotted name in ``text`` (Python tokens); None when
    the text does not tokenize."""
    names: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    expect_name = True
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    for token in tokens:
        if token.type == tokenize.NAME and expect_name:
            if not current:
                start = token.start[0]
            current.append(token.string)
            expect_name = False
        elif token.type == tokenize.OP and token.string == "." and current:
            expect_name = True
        else:
            if current:
                names.append((start, ".".join(current)))
            current = []
            expect_name = True
            if token.type == tokenize.NAME:
                start = token.start[0]
                current = [token.string]
                expect_name = False
    if current:
        names.append((start, ".".join(current)))
    return names
