"""A remote-config value, written in Python: the checkout's payment timeout."""

from __future__ import annotations

import json
import os
import urllib.request

from flamingock_es import ChangeContext, change_unit


def _put(key: str, value: object) -> None:
    request = urllib.request.Request(
        f"{os.environ['FLAGS_URL']}/config/{key}", method="PUT",
        data=json.dumps({"value": value}).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {os.environ['FLAGS_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def restore_timeout(ctx: ChangeContext) -> None:
    _put("checkout.payment-timeout-s", 30)


@change_unit(id="set-checkout-timeout", order=3, author="bruno", rollback=restore_timeout,
             description="The new checkout needs a longer payment timeout.")
def set_checkout_timeout(ctx: ChangeContext) -> None:
    _put("checkout.payment-timeout-s", 45)
