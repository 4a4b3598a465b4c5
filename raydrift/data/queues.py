"""Per-class queues of dataset indices: where each step's positives (and unconditional negatives) come from.

Pure torch and numpy; checkpointable (``state_dict``), so a resumed run draws exactly the positives the
uninterrupted run would have drawn.
"""

from __future__ import annotations

import numpy as np
import torch


class _Queue:
    """A cyclic queue over a fixed pool of indices: a random permutation of the pool, redrawn when used up."""

    def __init__(self, pool: torch.Tensor):
        self.pool = pool
        self.perm = pool[:0]  # empty, so the first draw fills it
        self.pos = 0

    def take(self, m: int, gen: torch.Generator) -> torch.Tensor:
        """The next ``m`` indices, int64 ``[m]``, running through as many refills as ``m`` needs."""
        if m > 0 and len(self.pool) == 0:
            raise ValueError("cannot sample from an empty class")
        parts = []
        while m > 0:
            if self.pos == len(self.perm):
                self.perm = self.pool[torch.randperm(len(self.pool), generator=gen)]
                self.pos = 0
            k = min(m, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos : self.pos + k])
            self.pos += k
            m -= k
        return torch.cat(parts) if parts else self.pool[:0]

    def state_dict(self) -> dict:
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        perm, pos = state["perm"].to(torch.int64), int(state["pos"])
        if len(perm) and not torch.equal(perm.sort().values, self.pool):
            raise ValueError("queue state does not match this dataset's labels")
        if not 0 <= pos <= len(perm):
            raise ValueError(f"queue position {pos} outside [0, {len(perm)}]")
        self.perm, self.pos = perm.clone(), pos


class ClassQueues:
    """Per-class queues of dataset indices, sampled without replacement; each class's queue is refilled
    with a fresh permutation when it runs out.

    Within one call and across calls, a class never repeats an index until its whole queue was used, so
    every index of a class appears exactly once per cycle. A draw larger than what is left (``n`` larger
    than a class, say) continues into the next cycle, so such a row can then hold an index twice.

    Two ``torch.Generator``s derived from ``seed``: one for the class queues, one for ``sample_any``, so
    turning the unconditional negatives on or off does not change the stream of positives.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, seed: int):
        labels = labels.detach().to("cpu", torch.int64).reshape(-1)
        counts = torch.bincount(labels, minlength=num_classes)
        if len(labels) and (int(labels.min()) < 0 or len(counts) > num_classes):
            raise ValueError(f"labels outside [0, {num_classes})")
        self.num_classes = num_classes
        # A stable sort keeps each class's pool in ascending index order.
        pools = torch.split(torch.argsort(labels, stable=True), counts.tolist())
        self._classes = [_Queue(p) for p in pools]
        self._any = _Queue(torch.arange(len(labels)))
        class_seed, any_seed = np.random.SeedSequence(seed).generate_state(2)
        self._gen_class = torch.Generator().manual_seed(int(class_seed))
        self._gen_any = torch.Generator().manual_seed(int(any_seed))

    def sample(self, classes: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` indices for each entry of ``classes`` (int ``[G]``): int64 ``[G, n]``, row ``i`` of class
        ``classes[i]``. Rows of the same class continue one queue, so they never share an index within a
        cycle."""
        classes = torch.as_tensor(classes).to("cpu", torch.int64).reshape(-1)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if len(classes) and not 0 <= int(classes.min()) <= int(classes.max()) < self.num_classes:
            raise ValueError(f"classes outside [0, {self.num_classes})")
        out = torch.empty(len(classes), n, dtype=torch.int64)
        for c in torch.unique(classes).tolist():
            rows = (classes == c).nonzero().flatten()
            out[rows] = self._classes[c].take(len(rows) * n, self._gen_class).view(len(rows), n)
        return out

    def sample_any(self, n: int) -> torch.Tensor:
        """``n`` indices from the whole dataset, int64 ``[n]``, under the same no-repeat-per-cycle rule."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._any.take(n, self._gen_any)

    def state_dict(self) -> dict:
        return {
            "class_generator": self._gen_class.get_state(),
            "any_generator": self._gen_any.get_state(),
            "classes": [q.state_dict() for q in self._classes],
            "any": self._any.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; the queues must be built on the same labels. Afterwards the future
        draws are exactly those the saved queues would have made."""
        if len(state["classes"]) != self.num_classes:
            raise ValueError(f"state has {len(state['classes'])} classes, these queues {self.num_classes}")
        # Restore into fresh queues first, so a state that does not fit leaves these queues untouched.
        queues = [_Queue(q.pool) for q in (*self._classes, self._any)]
        for q, s in zip(queues, (*state["classes"], state["any"]), strict=True):
            q.load_state_dict(s)
        *self._classes, self._any = queues
        self._gen_class.set_state(state["class_generator"])
        self._gen_any.set_state(state["any_generator"])
