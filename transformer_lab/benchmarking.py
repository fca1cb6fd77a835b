"""What the benchmark scripts share: a heading that names the machine and date, and recording tables."""

from __future__ import annotations

import datetime
import os
import platform

import jax


def heading(title: str) -> str:
    """A markdown heading: title, today's date, the processor, core count, device kind and jax version."""
    machine = f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].device_kind}'
    return f'### {title} ({datetime.date.today()}, {machine}, jax {jax.__version__})'


def publish(lines: list[str], record: str | None) -> None:
    """Prints a table and, with ``record`` (e.g. docs/benchmarks.md), appends it there."""
    table = '\n'.join(lines) + '\n'
    print(table)
    if record:
        with open(record, 'a') as f:
            f.write('\n' + table)
