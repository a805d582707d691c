"""The two lessons that teach shapes rather than train: 12_1 (cell basics) and 13_4 (pack / pad).

Their "target" is that every check passes: the shapes torch documents, and packed results equal to running
each sequence alone.
"""

import torch

from ..core._precision import tf32_disabled
from ..models import PackedEncoder, cell_tour


def cell_basics_checks(device: torch.device) -> dict[str, bool]:
    """Every row of the 12_1 tour has the shapes torch.nn.RNN documents (D = 1, one layer, H_out = 2)."""
    checks: dict[str, bool] = {}
    for row in cell_tour():
        seq = (row.batch, row.time) if row.batch_first else (row.time, row.batch)
        ok = row.input == (*seq, 4) and row.output == (*seq, 2) and row.hidden == (1, row.batch, 2)
        if row.cell == "LSTM":
            ok = ok and row.cell_state == (1, row.batch, 2)
        checks[f"{row.cell} {row.case} batch_first={row.batch_first}"] = ok
    return checks


def pack_pad_checks(device: torch.device) -> dict[str, bool]:
    """13_4: a packed batch gives, for every sequence, what running that sequence alone gives.

    TF32 is switched off for the comparison: on CUDA, cuDNN's TF32 rounding alone makes a batch and a single
    sequence differ by ~1e-4 (measured on an H200), which says nothing about packing.
    """
    with tf32_disabled():
        return _pack_pad_checks(device)


def _pack_pad_checks(device: torch.device) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    lengths = torch.tensor([5, 2, 7, 1])  # unsorted on purpose: enforce_sorted=False does the sorting
    for batch_first in (True, False):
        for bidirectional in (False, True):
            encoder = PackedEncoder(
                input=3, hidden=4, layers=2, bidirectional=bidirectional, batch_first=batch_first
            )
            encoder = encoder.to(device).eval()
            x = torch.randn(4, 7, 3, device=device)  # (batch, time, input)
            for i, n in enumerate(lengths.tolist()):
                x[i, n:] = 0.0  # padding
            padded = x if batch_first else x.transpose(0, 1)  # (batch, time, input) -> (*seq, input)
            with torch.no_grad():
                out, (h, c) = encoder(padded, lengths)
                out = out if batch_first else out.transpose(0, 1)  # (*seq, ...) -> (batch, time, dirs*hidden)
                ok = True
                for i, n in enumerate(lengths.tolist()):
                    one = x[i : i + 1, :n] if batch_first else x[i : i + 1, :n].transpose(0, 1)
                    out_i, (h_i, c_i) = encoder(one, torch.tensor([n]))
                    out_i = out_i if batch_first else out_i.transpose(0, 1)
                    ok &= torch.allclose(out[i, :n], out_i[0], atol=1e-5)
                    ok &= bool((out[i, n:] == 0).all())  # padded steps stay zero
                    ok &= torch.allclose(h[:, i], h_i[:, 0], atol=1e-5) and torch.allclose(
                        c[:, i], c_i[:, 0], atol=1e-5
                    )
            checks[f"packed == one at a time (batch_first={batch_first}, bidirectional={bidirectional})"] = (
                bool(ok)
            )
    return checks
