"""A small Dockerfile reader for the image tests: instructions, stages, ARG defaults, key=value
arguments, and the .dockerignore allow-list.  Enough for this repository's Dockerfile, not a
full implementation of the Dockerfile grammar (no heredocs, no escape directive)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One instruction: its first line number, upper-case keyword and raw argument text."""

    line: int
    keyword: str
    args: str

    def json_args(self) -> list[str]:
        """The exec-form (JSON array) arguments; raises ValueError for the shell form."""
        value = json.loads(self.args)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"line {self.line}: {self.keyword} is not a JSON array of strings")
        return value

    def pairs(self) -> dict[str, str]:
        """KEY=value arguments (ENV, LABEL, ARG) with shell quoting removed."""
        out = {}
        for word in shlex.split(self.args):
            key, sep, value = word.partition("=")
            out[key] = value if sep else ""
        return out


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM instruction and the instructions after it."""

    source: Instruction
    body: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        words = self.source.args.split()
        return words[-1] if len(words) == 3 and words[1].lower() == "as" else None

    @property
    def image(self) -> str:
        return self.source.args.split()[0]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.body if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.image} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for instruction in self.all("ENV"):
            merged.update(instruction.pairs())
        return merged


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile, with continuation lines joined and comments dropped."""
    instructions = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(p for p in pending if p).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        pending = []
    if pending:
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    """The build stages in order (instructions before the first FROM are not in any stage)."""
    out: list[Stage] = []
    current: Instruction | None = None
    body: list[Instruction] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            if current is not None:
                out.append(Stage(current, tuple(body)))
            current, body = instruction, []
        elif current is not None:
            body.append(instruction)
    if current is not None:
        out.append(Stage(current, tuple(body)))
    return out


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (usable in FROM lines)."""
    out: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            out.update(instruction.pairs())
    return out


def load() -> tuple[list[Instruction], list[Stage]]:
    """The repository's Dockerfile, parsed."""
    instructions = parse(DOCKERFILE.read_text(encoding="utf-8"))
    return instructions, stages(instructions)


def dockerignore_allowed() -> set[str]:
    """Paths re-included by `!` lines of the allow-list style .dockerignore (trailing / dropped)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


def context_sources(stage: Stage) -> list[str]:
    """Build-context paths a stage COPYs (COPY --from=... copies from another stage, not the context)."""
    sources = []
    for instruction in stage.all("COPY") + stage.all("ADD"):
        words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
        if any(w.startswith("--from") for w in shlex.split(instruction.args)):
            continue
        sources.extend(word.rstrip("/") for word in words[:-1])
    return sources
