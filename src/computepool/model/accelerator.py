"""AcceleratorType: a chip model, as read from the catalog."""

from __future__ import annotations

from dataclasses import dataclass

#: Software stacks we know of. A job lists the stacks its code runs on; a node's chip has one.
STACKS = ("cuda", "cann", "neuware", "dtk", "rocm")

#: The environment variable through which each stack's runtime is told which devices to use.
VISIBLE_DEVICES_ENV = {
    "cuda": "CUDA_VISIBLE_DEVICES",
    "cann": "ASCEND_RT_VISIBLE_DEVICES",
    "neuware": "MLU_VISIBLE_DEVICES",
    "dtk": "HIP_VISIBLE_DEVICES",
    "rocm": "HIP_VISIBLE_DEVICES",
}


#: When no rental price is public, a price per hour is derived on the same basis as the list
#: prices (see ``hourly_price``): the purchase price divided by the reference H100's ratio of
#: card price to on-demand list price (27,500 USD / 6.88 USD/h, both in the catalog), so a derived
#: price is what a cloud would list for that card; the same die gets the same price...
LIST_HOURS_PER_PURCHASE = 27500 / 6.88
#: ...or, without a purchase price either, this many USD per effective H100-hour (the H100's
#: own on-demand price in the catalog, 6.88 USD/h) times the chip's H100-equivalence.
USD_PER_H100_HOUR = 6.88


@dataclass(frozen=True, slots=True)
class AcceleratorType:
    """A chip model (one row of ``catalog/data/accelerators.yaml``)."""

    name: str
    vendor: str
    stack: str
    bf16_tflops: float
    memory_gib: float
    memory_bw_gbs: float
    interconnect_gbs: float
    tdp_w: float
    h100_equiv: float
    price_per_hour: float | None = None
    #: Fraction of peak a typical training job reaches on this chip's software stack (0..1].
    stack_efficiency: float = 1.0
    source: str = ""
    #: Purchase price of one accelerator (card or package), USD, where a public figure exists.
    purchase_usd: float | None = None
    #: Export-control status for China (domain-facts §1.4): ``available``, ``license_required``,
    #: ``banned``, ``china_special`` (designed under the limits), ``domestic`` (made in China),
    #: or empty when not assessed.
    export_status: str = ""
    #: What ``tdp_w`` covers: ``chip`` or ``system`` (per chip, host/switches/optics included).
    tdp_scope: str = "chip"
    #: ``cloud_list`` or ``derived`` (basis of ``price_per_hour``); None when no hourly price.
    price_basis: str | None = None
    #: ``card``, ``server_share``, ``same_die`` or ``assumption`` (basis of ``purchase_usd``).
    purchase_basis: str | None = None

    @property
    def hourly_price(self) -> float:
        """USD per accelerator-hour: the catalog's rental price, else a documented derivation."""
        return self.price_and_basis[0]

    @property
    def price_and_basis(self) -> tuple[float, str]:
        if self.price_per_hour is not None:
            return float(self.price_per_hour), "catalog"
        if self.purchase_usd:
            return float(self.purchase_usd) / LIST_HOURS_PER_PURCHASE, "derived from purchase"
        return self.h100_equiv * self.stack_efficiency * USD_PER_H100_HOUR, "H100-equivalent"

    @property
    def visible_devices_env(self) -> str:
        return VISIBLE_DEVICES_ENV.get(self.stack, "CUDA_VISIBLE_DEVICES")
