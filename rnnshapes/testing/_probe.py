"""Where the gradient checks take their gradients (private): the leaf tensor of a model's call.

``GradProbe`` runs the model once and hands back the tensor gradients are taken with respect to: a float
input (a PackedSequence padded back), an LSTM state ``(h0, c0)`` joined on its last axis, the output of a module
named by ``wrt``, or, for token indices, one embedding of the whole input that every embedding call reading it
(or a view of part of it) gets its rows from.
"""

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ._calls import CallFn, describe, is_float
from ._tokens import (
    _bag_reduce,
    _bag_weights,
    _follows,
    _locate,
    _lookup_input,
    _rearranged,
    _shares_elements,
)


class GradProbe:
    """Where a gradient check takes its gradients: a float input, or the output of an ``nn.Embedding``.

    For float inputs the chosen input is replaced by a detached copy that requires grad (a PackedSequence input
    is padded back, and packed again inside the call, so gradients have batch and time axes). For token inputs
    (integer indices) the gradients are taken with respect to the output of the ``nn.Embedding`` they go
    through (or of ``wrt`` when it is a module), captured with a forward hook that swaps the output for a leaf
    tensor; the embedding output keeps the index tensor's axes plus a trailing ``embed`` axis. When the indices
    came packed (``emb(packed.data)``), that output is ``(total, embed)``, with no batch or time axis: ``rows``
    then maps each of its rows back to its ``(example, step)``.

    By default token inputs win over float ones: with ``(tokens, h0)`` the check looks at the embedded tokens,
    not at ``h0`` (the name says so, and how to choose the other).
    """

    def __init__(
        self, model: Any, args: tuple[Any, ...], wrt: int | nn.Module | None, *, batch_first: bool
    ) -> None:
        self.model = model
        self.args = list(args)
        self.module: nn.Module | None = None
        self.position: int | None = None
        self.batch_first = batch_first
        self.rows: Tensor | None = None
        """For a packed token input: ``(total, 2)`` ``(example, step)`` of every row of the embedding output."""
        self.axis_of: dict[int, int] = {}
        """For token indices the model permutes before embedding them (``ids.t()``): the caller's axis -> the
        embedding output's axis, so that ``batch_axis``/``time_axis`` keep meaning the input the caller passed."""
        self._repack: Any = None
        self._floats = [i for i, a in enumerate(args) if is_float(a) or _is_float_packed(a)]
        self._states = [i for i, a in enumerate(args) if _is_float_state(a)]
        """Inputs that are a tuple/list of float tensors sharing all axes but the last (an LSTM's ``(h0, c0)``):
        differentiated only when ``wrt`` names them, as one leaf (the tensors joined on the last axis)."""
        self._tokens = [i for i, a in enumerate(args) if _is_tokens(a)]
        self._search = False  # look for the embedding the token inputs go through
        self._want: int | None = None  # wrt=<a token input>: the embedding call that reads this input
        self._read: int | None = None  # the token input whose embedding output is the leaf (when known)
        self._parts = (
            0  # token input differentiated by _run_parts: how many embedding calls read (part of) it
        )
        self._modules: list[nn.Module] = []  # ... the embeddings that read it
        self._chosen = isinstance(wrt, nn.Module)  # the module to differentiate at was named by wrt
        self._tuple_out = False  # ... and returned a tuple (an RNN's (output, h_n)): its first tensor
        if isinstance(wrt, nn.Module):
            self.module = wrt
        elif isinstance(wrt, int):
            if wrt in self._tokens and _embeddings(model):
                self._want = wrt
                self._search = True
            elif wrt not in self._floats and wrt not in self._states:
                raise ValueError(
                    f"wrt={wrt} must index a floating-point input (or a tuple of them sharing all axes but the "
                    "last, such as an LSTM's (h0, c0)), or token indices that an nn.Embedding of the model "
                    f"reads, but the inputs are {describe(args)}"
                )
            else:
                self.position = wrt
        elif self._tokens and _embeddings(model):
            self._search = True
        elif self._floats:
            self.position = self._floats[0]
        else:
            self.module = _first_embedding(model, args)
        self.leaf: Tensor | None = None
        if self.position is not None:
            self._prepare_input()

    @property
    def name(self) -> str:
        if self.position is not None:
            packed = " (padded back from a PackedSequence)" if self._repack is not None else ""
            if self.position in self._states:
                n = len(self.args[self.position])
                packed = f" (its {n} tensors joined on the last axis)" if n > 1 else " (its tensor)"
            return f"input {self.position}{packed}"
        assert self.module is not None
        what = _module_name(self.model, self.module)
        rows = "; packed rows mapped back to (example, step)" if self.rows is not None else ""
        if self._chosen:
            first = "the first tensor of " if self._tuple_out else ""
            return f"{first}the output of {what} (hooked: wrt names it{rows})"
        if self.axis_of and any(j != k for j, k in self.axis_of.items()):
            rows += "; the model permutes the indices before embedding them, so your axes are read through it"
        if self._parts > 1 or len(self._modules) > 1:
            by = " and ".join(_module_name(self.model, m) for m in self._modules) or what
            slices = "; each embedding a slice of its last axis" if len(self._modules) > 1 else ""
            return (
                f"the embedding by {by} of input {self._read} (read in {self._parts} calls, as rows of one "
                f"tensor in the input's layout{slices}; token indices)"
            )
        if self._read is not None and len(self._tokens) > 1:
            return f"the output of {what} where it reads input {self._read} (hooked; token indices{rows})"
        if not self._floats or not self._tokens:
            return f"the output of {what} (hooked; the inputs are integer indices{rows})"
        floats = ", ".join(str(i) for i in self._floats)
        return (
            f"the output of {what} (hooked: input {self._tokens[0]} holds token indices{rows}; float input "
            f"{floats} not differentiated, pass wrt={self._floats[0]} to look at it instead)"
        )

    def _prepare_input(self) -> None:
        assert self.position is not None
        arg = self.args[self.position]
        if self.position in self._states:
            # one leaf for the whole state: the tensors joined on their last axis (an LSTM's h and c share
            # every other axis, also with proj_size); the model gets a copy of each part, so in-place ops work
            parts = [t.detach() for t in arg]
            leaf = torch.cat(parts, dim=-1).requires_grad_(True)
            pieces = [v.clone() for v in leaf.split([int(t.shape[-1]) for t in parts], dim=-1)]
            if hasattr(arg, "_fields"):  # a namedtuple
                self.args[self.position] = type(arg)(*pieces)
            else:
                self.args[self.position] = type(arg)(pieces)
        elif isinstance(arg, PackedSequence):
            padded, lengths = pad_packed_sequence(arg, batch_first=self.batch_first)
            leaf = padded.detach().clone().requires_grad_(True)
            self._repack = (lengths, self.batch_first)
            self.args[self.position] = pack_padded_sequence(
                leaf, lengths, batch_first=self.batch_first, enforce_sorted=False
            )
        else:
            leaf = arg.detach().clone().requires_grad_(True)
            self.args[self.position] = leaf
        self.leaf = leaf

    def run(self, call: CallFn) -> tuple[Any, Tensor]:
        """Call the model once; return ``(result, leaf)`` where gradients are taken w.r.t. ``leaf``."""
        if self._search:
            wanted = [self._want] if self._want is not None else self._tokens
            tensors = [i for i in wanted if isinstance(self.args[i], Tensor)]  # packed ones: _run_search
            found = self._run_parts(call, tensors) if tensors else None
            if found is None and (self._want is None or not tensors):
                found = self._run_search(call)
            if found is not None:
                return found
            self._search = False
            if self._want is not None:
                raise ValueError(
                    f"wrt={self._want}: no nn.Embedding of the model read input {self._want} (or a view of it) "
                    "in one call of the model; pass wrt=<the module whose output carries its batch and time axes>"
                )
            if self._floats:  # no embedding took the token inputs: the first float input it is
                self.position = self._floats[0]
                self._prepare_input()
            else:
                self.module = _first_embedding(self.model, tuple(self.args))
        if self.module is None:
            assert self.leaf is not None
            return call(self.model, *self.args), self.leaf
        captured: list[Tensor] = []
        fed: list[Tensor] = []
        ran: list[str] = []
        packed_out: list[PackedSequence] = []
        swapped_out: list[Any] = []

        def hook(_module: nn.Module, inp: Any, out: Any) -> Any:
            ran.append(describe(out))
            if captured:
                return None
            # the module's output, or the first tensor of it (an RNN's ``output`` of ``(output, h_n)``)
            swapped = _swap_first_tensor(out, captured, packed_out)
            if not captured:
                return None
            fed.extend(inp[:1])
            swapped_out.append(swapped)
            return swapped

        handle = self.module.register_forward_hook(hook)
        try:
            result = call(self.model, *self.args)
        finally:
            handle.remove()
        name = _module_name(self.model, self.module)
        if len(ran) == 1 and not captured:
            raise ValueError(
                f"{name} returned {ran[0]}, which holds no float tensor to take gradients with respect to; pass "
                "wrt=<a module whose output (or first tensor of it) is the per-step float input>"
            )
        if len(ran) != 1:
            raise ValueError(
                f"{name} ran {len(ran)} times in one call of the model; the check needs it to run exactly once "
                "(over the whole batch) to take gradients with respect to its output. An embedding that reads a "
                "token input one step at a time (a decoder loop over target[:, t]) is differentiated with "
                "wrt=<that input's position> instead; else pass wrt=<the module whose output is the per-step "
                "input>"
            )
        self._tuple_out = isinstance(swapped_out[0], (tuple, list)) and not isinstance(
            swapped_out[0], PackedSequence
        )
        if packed_out:  # a PackedSequence output: its data rows map back to (example, step)
            self.rows = packed_rows(packed_out[0])
            return result, captured[0]
        if not self._chosen and fed:
            self._refuse_reordered(name, fed[0])
        self._map_packed_rows(fed[0] if fed else None, captured[0])
        self._map_axes(fed[0] if fed else None)
        return result, captured[0]

    def _refuse_reordered(self, name: str, fed: Any) -> None:
        """An embedding found without ``wrt`` that reads a token input's sequences in another order or a subset of
        them (sorted by length with repeats, so that the order cannot be recovered; char ids reshaped and sorted;
        ``ids[keep]``): its rows are not the caller's examples, and reading them as such would report leaks that
        are not there. A copy in the input's order (shifted, re-padded, remapped) is read as before."""
        if not isinstance(fed, Tensor) or fed.is_floating_point():
            return
        for i in self._tokens:
            base = self.args[i]
            if not isinstance(base, Tensor) or _locate(fed, base) is not None:
                continue
            what = _rearranged(fed, base)
            if what:
                raise ValueError(
                    f"{name} reads {what} of input {i} (a copy sorted, gathered or reshaped, such as words[perm] "
                    "before packing, (batch*words, chars) char ids sorted by length, or ids[keep], that the check "
                    "cannot place back from its values): its rows are not your examples. Make the batch's "
                    "sequences distinct, pass wrt=<a float input>, or wrt=<a module whose output is laid out as "
                    "your input>"
                )

    def _run_parts(self, call: CallFn, candidates: list[int]) -> tuple[Any, Tensor] | None:
        """Differentiate at the embeddings of a WHOLE token input: a leaf in the caller's layout
        ``(*input.shape, embed)``, whichever way and however often the model reads the input.

        The input is the first of ``candidates`` (positions of token tensors) that an embedding is fed, as it
        is, as a view of part of it (``ids.t()``, ``target[:, t]`` in a teacher-forced decoder loop), or as a
        copy of all of it in some axis order (``ids.long()``, ``ids.t().contiguous()``). The leaf is ZERO:
        every such call returns its own output plus the leaf's rows at the positions its indices come from, so
        the model computes exactly what it computes without the check, and the gradient at the leaf's
        (example, step) rows is the gradient at those embedding outputs. Several embeddings reading the input
        (a word and a gate embedding) each get their own slice of the leaf's last axis: a first run finds them
        and their widths. An nn.EmbeddingBag fed a 2-D view or copy of the input (one bag per row, no offsets)
        adds its own reduction of those rows (sum, mean or max, with padding_idx and per_sample_weights), so its
        Jacobian is the bag's. Reads the check cannot place (a copy of part of the input, 1-D bags with offsets)
        run untouched."""
        self._refuse_shared_tokens(candidates)
        # first run: which embeddings read which candidate, and how wide their outputs are
        seen: dict[str, Any] = {"input": None, "widths": {}}

        def observe(module: nn.Module, inp: Any, kwargs: Any, out: Any) -> None:
            fed = _lookup_input(module, inp, kwargs, out)
            if fed is None:
                return
            inputs = candidates if seen["input"] is None else [seen["input"]]
            for i in inputs:
                if self._place(fed, i) is not None:
                    seen["input"] = i
                    seen["widths"].setdefault(module, int(out.shape[-1]))
                    return

        self._call_with_embedding_hook(call, observe, with_kwargs=True)
        if seen["input"] is None:
            return None
        i, widths = seen["input"], seen["widths"]
        base = self.args[i]
        offsets, total = {}, 0
        for module, width in widths.items():
            offsets[module], total = total, total + width
        state: dict[str, Any] = {"leaf": None, "reads": 0}

        def hook(module: nn.Module, inp: Any, kwargs: Any, out: Any) -> Any:
            fed = _lookup_input(module, inp, kwargs, out)
            if fed is None or module not in offsets:
                return None
            pos = self._place(fed, i)
            if pos is None:
                return None
            if state["leaf"] is None:
                zeros = torch.zeros(*base.shape, total, dtype=out.dtype, device=out.device)
                state["leaf"] = zeros.requires_grad_(True)
            state["reads"] += 1
            start, width = offsets[module], widths[module]
            if pos.shape == base.shape and bool((pos.flatten() == torch.arange(base.numel())).all()):
                add = state["leaf"][..., start : start + width]  # the input itself, as laid out
            else:
                rows = state["leaf"].reshape(base.numel(), total)[:, start : start + width]
                add = rows.index_select(0, pos.flatten().to(rows.device)).view(*fed.shape, width)
            if isinstance(module, nn.EmbeddingBag):
                add = _bag_reduce(module, fed, add, _bag_weights(inp, kwargs))
            return out + add.to(out.dtype)

        result = self._call_with_embedding_hook(call, hook, with_kwargs=True)
        if state["leaf"] is None:
            return None
        self.module = next(iter(widths))
        self._modules = list(widths)
        self._read = i
        self._parts = int(state["reads"])
        return result, state["leaf"]

    def _place(self, fed: Tensor, i: int) -> Tensor | None:
        """Where the indices ``fed`` stand in token input ``i`` (see ``_locate``), when they are input ``i``'s:
        a view of another token input belongs to that one, and a copy counts only when its values match input
        ``i`` alone (a copy task whose source and target are equal cannot say which a copy is)."""
        others = [j for j in self._tokens if j != i and isinstance(self.args[j], Tensor)]
        if any(_locate(fed, self.args[j], by_value=False) is not None for j in others):
            return None
        pos = _locate(fed, self.args[i], by_value=False)
        if pos is not None:
            return pos
        pos = _locate(fed, self.args[i])
        if pos is None or any(_locate(fed, self.args[j]) is not None for j in others):
            return None
        return pos

    def _refuse_shared_tokens(self, candidates: list[int]) -> None:
        """Two token inputs holding the same elements (the same tensor passed as source and target): a read
        cannot be told apart, so say how to make them distinct instead of guessing."""
        for k, i in enumerate(candidates):
            for j in [c for c in self._tokens if c != i and isinstance(self.args[c], Tensor)]:
                if j in candidates[:k]:
                    continue
                if _shares_elements(self.args[i], self.args[j]):
                    raise ValueError(
                        f"inputs {min(i, j)} and {max(i, j)} hold the same token tensor (or overlapping views of "
                        "one): the check cannot tell which embedding reads belong to which input. Pass a copy as "
                        f"one of them (x.clone() for input {max(i, j)})"
                    )

    def _call_with_embedding_hook(self, call: CallFn, hook: Any, with_kwargs: bool = False) -> Any:
        """Call the model once with ``hook`` as a forward hook on every embedding of it."""
        handles = [m.register_forward_hook(hook, with_kwargs=with_kwargs) for m in _embeddings(self.model)]
        try:
            return call(self.model, *self.args)
        finally:
            for handle in handles:
                handle.remove()

    def _run_search(self, call: CallFn) -> tuple[Any, Tensor] | None:
        """Hook every embedding; differentiate at the call that reads a token input.

        The call is found by the tensor it is fed: the token input itself or a view of all of it (``ids.t()``,
        ``packed.data``), else (no ``wrt``) the first call fed a tensor shaped like a token input (a copy). An
        embedding shared by several inputs (a seq2seq model's source and target) may run once per input: only
        the call that reads the chosen input is hooked, and it must read it exactly once."""
        wanted = [self._want] if self._want is not None else self._tokens
        datas = {i: _token_data(self.args[i]) for i in wanted}
        reads: dict[tuple[nn.Module, int], int] = {}
        captured: list[tuple[nn.Module, int, Tensor, Tensor]] = []

        def input_of(t: Tensor) -> int | None:
            for i, d in datas.items():
                if (
                    t.device == d.device
                    and t.data_ptr() == d.data_ptr()
                    and t.numel() == d.numel()
                    and sorted(t.shape) == sorted(d.shape)
                ):
                    return i
            if self._want is None and any(_follows(t, d) for d in datas.values()):
                return -1  # a copy of a token input, or a function of it, in the input's order
            return None

        def hook(module: nn.Module, inp: Any, out: Any) -> Any:
            if not isinstance(out, Tensor) or not inp or not isinstance(inp[0], Tensor):
                return None
            which = input_of(inp[0])
            if which is None:
                return None
            reads[(module, which)] = reads.get((module, which), 0) + 1
            if captured:
                return None
            leaf = out.detach().requires_grad_(True)
            captured.append((module, which, inp[0], leaf))
            return leaf

        result = self._call_with_embedding_hook(call, hook)
        if not captured:
            return None
        self.module, which, fed, leaf = captured[0]
        self._read = which if which >= 0 else None
        if reads[(self.module, which)] != 1:
            what = f"input {which}" if which >= 0 else "a tensor shaped like the token input"
            other = (
                f"pass wrt={self._floats[0]} to differentiate the float input instead, or "
                if self._floats
                else ""
            )
            raise ValueError(
                f"{_module_name(self.model, self.module)} read {what} {reads[(self.module, which)]} times in one "
                "call of the model; the check needs it read exactly once (over the whole batch) to take "
                f"gradients with respect to the embedding's output. {other.capitalize() or 'Pass '}"
                "wrt=<the module whose output is the per-step input>"
            )
        self._map_packed_rows(fed, leaf)
        self._map_axes(fed)
        return result, leaf

    def cut_position(self) -> int | None:
        """The input whose time axis the leaf keeps, for a check that reruns the model on its first steps: a
        plain float input, or the token input whose embedding output is the leaf. None for a packed input, an
        LSTM state, a module named by ``wrt`` and packed embedding rows."""
        if self.position is not None:
            return None if self._repack is not None or self.position in self._states else self.position
        return None if self._chosen or self.rows is not None else self._read

    def leaf_axis(self, axis: int) -> int:
        """The embedding output's axis that holds the caller's input ``axis`` (the same unless permuted)."""
        if not self.axis_of:
            return axis
        return self.axis_of.get(axis % len(self.axis_of), axis)

    def _map_axes(self, fed: Tensor | None) -> None:
        """When the hooked module was fed a permuted view of a token input (``ids.t()``), map its axes."""
        if fed is None or fed.dim() < 2:
            return
        for i in self._tokens:
            arg = self.args[i]
            if not isinstance(arg, Tensor) or arg.dim() != fed.dim() or arg.data_ptr() != fed.data_ptr():
                continue
            if arg.stride() == fed.stride():
                return  # the input itself: axes as they are
            perm: dict[int, int] = {}
            for k in range(fed.dim()):
                cands = [
                    j
                    for j in range(arg.dim())
                    if j not in perm and arg.shape[j] == fed.shape[k] and arg.stride(j) == fed.stride(k)
                ]
                if len(cands) != 1:
                    return  # ambiguous (size-1 axes): leave the axes as given
                perm[cands[0]] = k
            self.axis_of = perm
            return

    def _map_packed_rows(self, fed: Tensor | None, leaf: Tensor) -> None:
        """When the hooked module was fed the data of a packed token input, remember each row's (example, step)."""
        if fed is None or fed.dim() != 1:
            return
        for i in self._tokens or range(len(self.args)):
            arg = self.args[i]
            if (
                isinstance(arg, PackedSequence)
                and fed.shape == arg.data.shape
                and leaf.shape[0] == fed.shape[0]
            ):
                self.rows = packed_rows(arg)
                return


def _swap_first_tensor(out: Any, captured: list[Tensor], packed_out: list[PackedSequence]) -> Any:
    """``out`` with its first float tensor, depth first, replaced by a leaf that requires grad (appended to
    ``captured``); a PackedSequence's data is that tensor (the new PackedSequence goes to ``packed_out``)."""
    if captured:
        return out
    if isinstance(out, PackedSequence):
        if not out.data.is_floating_point():
            return out
        leaf = out.data.detach().requires_grad_(True)
        captured.append(leaf)
        packed = PackedSequence(leaf, out.batch_sizes, out.sorted_indices, out.unsorted_indices)
        packed_out.append(packed)
        return packed
    if isinstance(out, Tensor):
        if not (out.is_floating_point() or out.is_complex()):
            return out
        leaf = out.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf
    if isinstance(out, (tuple, list)):
        items = [_swap_first_tensor(item, captured, packed_out) for item in out]
        if hasattr(out, "_fields"):  # a namedtuple
            return type(out)(*items)
        return type(out)(items)
    return out


def packed_rows(packed: PackedSequence) -> Tensor:
    """``(total, 2)``: the ``(example, step)`` of every row of ``packed.data`` (examples in the caller's order)."""
    sizes = packed.batch_sizes.tolist()
    step = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    k = torch.cat([torch.arange(n) for n in sizes]) if sizes else torch.zeros(0, dtype=torch.long)
    example = k if packed.sorted_indices is None else packed.sorted_indices.cpu()[k]
    return torch.stack([example, step], dim=1)


def _is_float_state(x: Any) -> bool:
    """A tuple/list of float tensors with the same dtype, device and every axis but the last (an LSTM's
    ``(h0, c0)``, also with ``proj_size``; or a 1-tuple)."""
    if isinstance(x, PackedSequence) or not isinstance(x, (tuple, list)) or not x:
        return False
    first = x[0]
    return all(
        is_float(t)
        and t.dim() >= 1
        and t.shape[:-1] == first.shape[:-1]
        and t.dtype == first.dtype
        and t.device == first.device
        for t in x
    )


def _is_float_packed(x: Any) -> bool:
    return isinstance(x, PackedSequence) and x.data.is_floating_point()


def _is_tokens(x: Any) -> bool:
    """Token indices: an integer tensor with batch and time (2 or more axes) or a PackedSequence of integers.
    A 1-D integer tensor is lengths; a bool tensor is a mask."""
    data = x.data if isinstance(x, PackedSequence) else x
    if (
        not isinstance(data, Tensor)
        or data.is_floating_point()
        or data.is_complex()
        or data.dtype == torch.bool
    ):
        return False
    return isinstance(x, PackedSequence) or data.dim() >= 2


def _token_data(x: Any) -> Tensor:
    return x.data if isinstance(x, PackedSequence) else x


def _embeddings(model: Any) -> list[nn.Module]:
    if not isinstance(model, nn.Module):
        return []
    return [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]


def _first_embedding(model: Any, args: tuple[Any, ...]) -> nn.Module:
    found = _embeddings(model)
    if found:
        return found[0]
    raise ValueError(
        f"no floating-point input to take gradients with respect to (the inputs are {describe(args)}) and the "
        "model has no nn.Embedding to hook: pass float inputs, or wrt=<a submodule whose output carries the "
        "batch and time axes of the inputs>"
    )


def _module_name(model: Any, module: nn.Module) -> str:
    if isinstance(model, nn.Module):
        for name, m in model.named_modules():
            if m is module:
                return (
                    f"model.{name} ({type(module).__name__})" if name else f"model ({type(module).__name__})"
                )
    return type(module).__name__
