"""Money inside the core: integer units of 1/10,000, so balances never drift.

The contract carries at most 4 decimal places (every ISO 4217 minor unit fits),
so the conversion from :class:`~decimal.Decimal` is exact.
"""

from __future__ import annotations

from decimal import Decimal

UNIT = 10_000
_CENT = Decimal("0.01")


def to_units(amount: Decimal) -> int:
    """Exact conversion of a contract amount.

    >>> to_units(Decimal("12.34"))
    123400
    """
    units = amount * UNIT
    if units != units.to_integral_value():
        raise ValueError(f"amount {amount} has more than 4 decimal places")
    return int(units)


def to_decimal(units: int) -> Decimal:
    """Back to a Decimal, with 2 places unless finer units are present.

    >>> str(to_decimal(123400)), str(to_decimal(5)), str(to_decimal(0))
    ('12.34', '0.0005', '0.00')
    """
    value = Decimal(units).scaleb(-4)
    return value.quantize(_CENT) if units % 100 == 0 else value


def to_str(units: int) -> str:
    """The text of :func:`to_decimal`, by integer arithmetic (it runs three times per score).

    >>> to_str(123400), to_str(123450), to_str(-5), to_str(0), to_str(-100)
    ('12.34', '12.3450', '-0.0005', '0.00', '-0.01')
    """
    if not units:
        return "0.00"
    whole, frac = divmod(-units if units < 0 else units, UNIT)
    sign = "-" if units < 0 else ""
    if frac % 100:
        return f"{sign}{whole}.{frac:04d}"
    return f"{sign}{whole}.{frac // 100:02d}"


def to_major(units: int) -> float:
    """Float in major units, for features only (never for balances)."""
    return units / UNIT
