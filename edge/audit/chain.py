"""The chain checks of `verify`, on compact state: records arrive one at a time and only what the checks need
stays, about 55 bytes a record (seq, line, hash, device, a few flags; the previous hash only where it is not the
hash of the record before in the file; a checkpoint's policy and signature once for all alike). A year's log
(525,000 records) holds about 30 MB here, where keeping its records as dicts and models took about 3 GB.

Order of arrival: file order for a log (line numbers name records), or by (seq, hash) for records HQ
ingested (hashes name them). A log is mostly in order: when seqs never decrease in arrival order, the records
are their own seq order; otherwise numpy sorts their seqs (8 bytes a record).
"""

import hashlib
import itertools
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from edge.audit.records import TornTail
from edge.config.base import StrictModel

ProblemKind = Literal[
    "edited", "missing", "inserted", "reordered", "relinked", "malformed", "truncated", "bad_signature",
    "unknown_key", "unsigned", "cut", "line_endings",
]
SHOW = 8  # seqs listed in one reorder message
_HEX = re.compile(r"[0-9a-f]{64}")
_GENESIS = bytes(32)
_SELF_OK, _CHECKPOINT_KIND, _LINKS_BACK, _CHECKPOINT = 1, 2, 4, 8
SEQ_MAX = 2**63 - 1  # larger seqs cannot be a log's: the verifier keeps seqs as 64-bit integers


class Problem(StrictModel):
    kind: ProblemKind
    message: str
    seq: int | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the chain checks need of a valid checkpoint record; `signature` is None when no key was given."""

    every: int
    late: bool
    torn_tail: TornTail | None
    key_id: str
    signature: Literal["good", "bad", "unknown_key"] | None


@dataclass(frozen=True, slots=True)
class Row:
    """One record as the chain checks see it. `computed`: its content hash, given when it differs from `hash`
    (or the record's bytes were changed), so that copies can be told from records merely claiming its seq."""

    seq: int
    prev: str
    hash: str
    line: int | None
    self_ok: bool
    checkpoint_kind: bool  # its `kind` says checkpoint, valid or not
    device: str | None  # None: not a valid edge.audit/1 record
    checkpoint: Checkpoint | None
    computed: str | None = None


@dataclass(frozen=True)
class Outcome:
    records: int
    first_seq: int | None
    last_seq: int | None
    device: str | None
    signed_through: int | None
    notes: list[str]


def key_of(text: str) -> bytes:
    """32 bytes that stand for a hash field: the hash itself, or for a field that is not one (damaged or
    forged) a sha256 of it, which equals no real hash short of a sha256 preimage."""
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    return hashlib.sha256(b"not a hash\0" + text.encode("utf-8", "surrogatepass")).digest()


class Chain:
    """Collects rows (`add`), then names every problem of the chain they form (`finish`)."""

    def __init__(self, in_file: bool) -> None:
        self.in_file = in_file
        self.last_seq: int | None = None  # of the row added last
        self._seq = array("q")
        self._line = array("q")  # 0: none
        self._hash = bytearray()
        self._flags = bytearray()
        self._device = array("i")  # index into _devices, -1: not a valid record
        self._devices: dict[str, int] = {}  # device id -> its index
        self._prev: dict[int, bytes] = {}  # rows whose prev is not the hash of the row before
        self._computed: dict[int, bytes] = {}
        # valid checkpoints (a year holds ~90,000): their rows, and which of the few distinct ones each is
        self._checkpoint_rows = array("q")
        self._checkpoint_of = array("i")
        self._checkpoints: list[Checkpoint] = []
        self._distinct: dict[Checkpoint, int] = {}
        self._order: Sequence[int] = range(0)  # rows in seq order, and their seqs: set by `finish`
        self._sorted: Sequence[int] = self._seq

    def add(self, row: Row) -> None:
        i = len(self._seq)
        prev, digest = key_of(row.prev), key_of(row.hash)
        links_back = i > 0 and prev == self._hash[-32:]
        self._seq.append(row.seq)
        self._line.append(row.line or 0)
        self._hash += digest
        self._flags.append(_SELF_OK * row.self_ok | _CHECKPOINT_KIND * row.checkpoint_kind | _LINKS_BACK * links_back
                           | _CHECKPOINT * (row.checkpoint is not None))
        self._device.append(-1 if row.device is None else self._devices.setdefault(row.device, len(self._devices)))
        if not links_back:
            self._prev[i] = prev
        if row.computed is not None:
            self._computed[i] = key_of(row.computed)
        if row.checkpoint is not None:
            if row.checkpoint not in self._distinct:
                self._distinct[row.checkpoint] = len(self._checkpoints)
                self._checkpoints.append(row.checkpoint)
            self._checkpoint_rows.append(i)
            self._checkpoint_of.append(self._distinct[row.checkpoint])
        self.last_seq = row.seq

    def finish(self, problems: list[Problem], keys_given: bool) -> Outcome:
        """Append the chain's problems to `problems`, pass by pass as `verify` sorts them, and sum the chain up."""
        self._order, self._sorted = _seq_order(self._seq)
        removed = self._duplicates(problems)
        if self.in_file:
            removed |= self._misfits(removed, problems)
        count, first, last, device = 0, None, None, None
        for i in self._in_seq_order(removed):
            count, first, last = count + 1, i if first is None else first, i
            if device is None and self._device[i] >= 0:
                device = next(d for d, index in self._devices.items() if index == self._device[i])
        if not count:
            problems.append(Problem(kind="missing",
                                    message="no audit records: a device's log starts with a checkpoint"))
        self._gaps_and_links(self._in_seq_order(removed), problems)
        if self.in_file:
            self._reorders(removed, problems)
        notes: list[str] = []
        signed_through = self._checkpoint_checks(self._in_seq_order(removed), keys_given, problems, notes)
        return Outcome(records=count, first_seq=None if first is None else self._seq[first],
                       last_seq=None if last is None else self._seq[last], device=device,
                       signed_through=signed_through, notes=notes)

    def hashes_at(self, seq: int) -> list[str]:
        """The hash fields of the rows claiming `seq` (after `finish`)."""
        return [self._h(i).hex() for i in self._rows_at(seq)]

    # -- rows ------------------------------------------------------------------------------------------------

    def _h(self, i: int) -> bytes:
        return bytes(self._hash[32 * i: 32 * i + 32])

    def _p(self, i: int) -> bytes:
        return self._h(i - 1) if self._flags[i] & _LINKS_BACK else self._prev[i]

    def _where(self, i: int) -> str:
        if self.in_file:
            return f"record at line {self._line[i]}"
        return f"record seq {self._seq[i]} ({self._h(i).hex()[:12]}…)"

    def _at(self, i: int) -> str:
        return f" (line {self._line[i]})" if self.in_file else ""

    def _lineno(self, i: int) -> int | None:
        return self._line[i] if self.in_file else None

    def _checkpoint(self, i: int) -> Checkpoint | None:
        if not self._flags[i] & _CHECKPOINT:
            return None
        return self._checkpoints[self._checkpoint_of[bisect_left(self._checkpoint_rows, i)]]

    def _rows_at(self, seq: int) -> Iterator[int]:
        lo, hi = bisect_left(self._sorted, seq), bisect_right(self._sorted, seq)
        return (int(self._order[k]) for k in range(lo, hi))

    def _prev_ok(self, i: int) -> bool:
        seq, prev = self._seq[i], self._p(i)
        return prev == _GENESIS if seq == 0 else any(self._h(j) == prev for j in self._rows_at(seq - 1))

    def _next_ok(self, i: int) -> bool:
        digest = self._h(i)
        return any(self._p(j) == digest for j in self._rows_at(self._seq[i] + 1))

    def _in_seq_order(self, removed: set[int]) -> Iterator[int]:
        return (int(i) for i in self._order if int(i) not in removed)

    # -- the checks ------------------------------------------------------------------------------------------

    def _duplicates(self, problems: list[Problem]) -> set[int]:
        """Where several rows claim one seq, keep the one its neighbours link to; the others are inserted."""
        losers: set[int] = set()
        for group in _groups(self._sorted, self._order):
            ranked = sorted(group, key=lambda i: (-(self._prev_ok(i) + self._next_ok(i)),
                                                  not self._flags[i] & _SELF_OK, i))
            kept, seq = ranked[0], self._seq[ranked[0]]
            owner = f"line {self._line[kept]}" if self.in_file else f"hash {self._h(kept).hex()[:12]}…"
            for i in ranked[1:]:
                losers.add(i)
                what = "a copy of" if self._content(i) == self._content(kept) else "claims"
                problems.append(Problem(kind="inserted", seq=seq, line=self._lineno(i),
                                        message=f"{self._where(i)} inserted ({what} seq {seq}, which the chain gives "
                                                f"to {owner})"))
        return losers

    def _content(self, i: int) -> tuple[bytes, bytes]:
        """Equal for two rows exactly when their records are equal: (hash field, hash of the rest)."""
        return self._h(i), self._computed.get(i, self._h(i))

    def _misfits(self, removed: set[int], problems: list[Problem]) -> set[int]:
        """A row that links to nothing and whose seq does not fit between its neighbours in the file is inserted."""
        misfits: set[int] = set()
        rows = (i for i in range(len(self._seq)) if i not in removed)
        below, i = -1, next(rows, None)
        while i is not None:
            after = next(rows, None)
            seq = self._seq[i]
            fits = below < seq and (after is None or seq < self._seq[after])
            if not fits and not self._prev_ok(i) and not self._next_ok(i):
                misfits.add(i)
                problems.append(Problem(kind="inserted", seq=seq, line=self._line[i],
                                        message=f"{self._where(i)} inserted (seq {seq} links to no record and does "
                                                "not fit between its neighbours)"))
            below, i = seq, after
        return misfits

    def _gaps_and_links(self, chain: Iterator[int], problems: list[Problem]) -> None:
        expected, prev = 0, _GENESIS
        for i in chain:
            seq = self._seq[i]
            if seq > expected:
                problems.append(Problem(kind="missing", seq=expected, line=self._lineno(i),
                                        message=f"{_span(expected, seq - 1)} missing (gap)"))
            elif self._p(i) != prev:
                message = (f"record seq 0 does not start from the genesis hash{self._at(i)}" if seq == 0 else
                           f"chain broken between records {seq - 1} and {seq}{self._at(i)}: record {seq} links to a "
                           f"different hash (one of them was rewritten with a recomputed hash)")
                problems.append(Problem(kind="relinked", seq=seq, line=self._lineno(i), message=message))
            expected, prev = seq + 1, self._h(i)

    def _reorders(self, removed: set[int], problems: list[Problem]) -> None:
        """Runs of positions where the file order differs from seq order, each named by its seqs."""
        in_file = (i for i in range(len(self._seq)) if i not in removed)
        run: list[int] = []
        for found, want in itertools.chain(zip(in_file, self._in_seq_order(removed), strict=True), [(None, None)]):
            if found is not None and found != want:
                run.append(found)
                continue
            if run:
                seqs = sorted(self._seq[i] for i in run)
                if len(run) == 2:
                    message = f"records {seqs[0]} and {seqs[1]} reordered"
                else:
                    shown = ", ".join(str(self._seq[i]) for i in run[:SHOW]) + (", …" if len(run) > SHOW else "")
                    message = f"records {seqs[0]}-{seqs[-1]} reordered (file order {shown})"
                problems.append(Problem(kind="reordered", seq=seqs[0], line=min(self._line[i] for i in run),
                                        message=f"{message} at lines {self._line[run[0]]}-{self._line[run[-1]]}"))
                run = []

    def _checkpoint_checks(self, rows: Iterator[int], keys_given: bool, problems: list[Problem],
                           notes: list[str]) -> int | None:
        """Check signatures, and that no more records follow a checkpoint than the signed policy allows.

        Returns the seq of the last checkpoint with a good signature (None when none was checked or good).
        """
        run = _Run()
        signed_through, empty = None, True
        for i in rows:
            if empty and self._seq[i] == 0 and not self._flags[i] & _CHECKPOINT_KIND:
                problems.append(Problem(kind="unsigned", seq=0, line=self._lineno(i), message="record seq 0 is not "
                                        "the opening checkpoint: the log's start was replaced"))
            empty = False
            checkpoint = self._checkpoint(i)
            if checkpoint is None:
                run.add(self._seq[i], self._lineno(i))
                continue
            run.close(checkpoint.late, problems, notes)
            run = _Run(checkpoint.every)
            seq = self._seq[i]
            if checkpoint.torn_tail is not None:
                notes.append(f"seq {seq}: reopened after a crash; an unfinished line of {checkpoint.torn_tail.length} "
                             f"bytes (sha256 {checkpoint.torn_tail.sha256[:16]}…) was removed")
            if checkpoint.signature == "unknown_key":
                problems.append(Problem(kind="unknown_key", seq=seq, line=self._lineno(i),
                                        message=f"checkpoint at seq {seq}: signed by key {checkpoint.key_id[:16]}…, "
                                                "which is not a given public key"))
            elif checkpoint.signature == "bad":
                problems.append(Problem(kind="bad_signature", seq=seq, line=self._lineno(i),
                                        message=f"checkpoint at seq {seq}: bad signature"))
            elif checkpoint.signature == "good":
                signed_through = seq
        run.close(False, problems, notes)
        if not keys_given:  # the report's signatures_checked says so; `edge audit verify` exits 3 unless told not to
            return None
        if not empty and signed_through is None:
            problems.append(Problem(kind="unsigned", message="no checkpoint is signed by a given key: nothing in this "
                                                             "log is authenticated"))
        elif run.length and not any(p.kind == "unsigned" for p in problems):
            notes.append(f"{_span(run.first, run.last)} after the last checkpoint: not signed yet")
        return signed_through


class _Run:
    """The records since the last checkpoint, and how many that checkpoint's signed policy allows."""

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self.length, self.first, self.last, self.line = 0, 0, 0, None

    def add(self, seq: int, line: int | None) -> None:
        if not self.length:
            self.first, self.line = seq, line
        self.length, self.last = self.length + 1, seq

    def close(self, late: bool, problems: list[Problem], notes: list[str]) -> None:
        if self.every is None or self.length <= self.every:
            return
        if late:
            notes.append(f"records {self.first}-{self.last}: checkpoint late (the device could not write one in time, "
                         "e.g. a full disk)")
        else:
            problems.append(Problem(
                kind="unsigned", seq=self.first, line=self.line,
                message=f"records {self.first}-{self.last}: {self.length} records without a checkpoint, where the "
                        f"device signs at least every {self.every}: checkpoints were removed or the chain rewritten",
            ))


def _seq_order(seqs: array) -> tuple[Sequence[int], Sequence[int]]:
    """Row indices in seq order (stable), and the seqs in that order."""
    if all(a <= b for a, b in itertools.pairwise(seqs)):
        return range(len(seqs)), seqs
    import numpy as np  # only for a log out of order: 8 bytes a record, where a list of ints takes 36

    values = np.frombuffer(seqs, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    return order, values[order]


def _groups(sorted_seqs: Sequence[int], order: Sequence[int]) -> Iterator[list[int]]:
    """The rows of each seq that more than one row claims, in seq order, each group in arrival order."""
    start = None
    for k, (a, b) in enumerate(itertools.pairwise(sorted_seqs)):
        if a == b and start is None:
            start = k
        elif a != b and start is not None:
            yield [int(order[j]) for j in range(start, k + 1)]
            start = None
    if start is not None:
        yield [int(order[j]) for j in range(start, len(sorted_seqs))]


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}-{last}"
