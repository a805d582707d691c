"""GPU-only checks of scripts/gpu-check that need a real device: nn.DataParallel's hidden-state trap (issue 15)
and guard under CUDA float16 autocast (issue 10). Prints one line per check; exit 1 if any failed.

With one visible GPU, nn.DataParallel calls the module directly (nothing is scattered), so the trap cannot
show: the script says so and checks only that the fix runs. With two or more, the trap must be a ShapeError
carrying [dataparallel-hidden] and the fix must run.
"""

import sys

import torch
from jaxtyping import Float
from torch import Tensor, nn

from rnnshapes import Hidden, ShapeError, guard, shapecheck


class StateOutside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.batch_first = True
        self.rnn = nn.GRU(8, 16, num_layers=2, batch_first=True)

    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"], h0: Hidden) -> Float[Tensor, "*seq hidden"]:
        return self.rnn(x, h0)[0]


class StateInside(StateOutside):
    @shapecheck
    def forward(self, x: Float[Tensor, "*seq input"]) -> Float[Tensor, "*seq hidden"]:  # type: ignore[override]
        return self.rnn(x, torch.zeros(2, x.size(0), 16, device=x.device))[0]


def main() -> int:
    ok = True
    n = torch.cuda.device_count()
    x = torch.randn(8, 5, 8, device="cuda")
    if n >= 2:
        try:
            nn.DataParallel(StateOutside().cuda())(x, torch.zeros(2, 8, 16, device="cuda"))
            print(f"dataparallel trap on {n} GPUs: NOT caught")
            ok = False
        except ShapeError as e:
            caught = "[dataparallel-hidden]" in str(e)
            ok &= caught
            print(f"dataparallel trap on {n} GPUs: ShapeError, hint {'present' if caught else 'MISSING'}")
    else:
        print(
            f"dataparallel trap: {n} GPU visible, DataParallel scatters nothing: trap not shown on this machine"
        )
    out = nn.DataParallel(StateInside().cuda())(x)
    print(f"dataparallel fix (state built inside forward) on {n} GPU(s): output {tuple(out.shape)}")
    model = nn.Sequential(nn.Linear(8, 8), nn.GRU(8, 16, batch_first=True)).cuda()
    guard(model)
    try:
        with torch.autocast("cuda", dtype=torch.float16):
            out, _ = model(x)
        print(f"guard under CUDA float16 autocast: ran, output {out.dtype}")
    except ShapeError as e:
        print(f"guard under CUDA float16 autocast: FALSE ALARM\n{e}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
