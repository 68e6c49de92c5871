"""Progress bars for encoding: shown at once when asked, after a delay by default."""

from __future__ import annotations

from tqdm.auto import tqdm

PROGRESS_DELAY_SECONDS = 2.0


def progress_bar(total: int, description: str, show: bool | None) -> tqdm:
    """A tqdm bar over `total` texts: `show=True` at once, False never, None only for
    jobs that last longer than `PROGRESS_DELAY_SECONDS`."""
    return tqdm(
        total=total,
        desc=description,
        unit="text",
        disable=show is False,
        delay=0.0 if show else PROGRESS_DELAY_SECONDS,
    )
