"""What the client is asked to send; card data never passes here (HPF tokens stand for it)."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    country_code: str | None = None
    phone: str | None = None
    ip: str | None = None

    def wire(self) -> dict[str, str]:
        fields = {
            "customerEmail": self.email,
            "customerFirstName": self.first_name,
            "customerLastName": self.last_name,
            "customerAddress": self.address,
            "customerCity": self.city,
            "customerState": self.state,
            "customerZipCode": self.zip_code,
            "customerCountryCode": self.country_code.upper() if self.country_code else None,
            "customerPhone": self.phone,
            "customerIp": self.ip,
        }
        return {name: value for name, value in fields.items() if value}


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRequest:
    """A sale or authorization with a hosted-payment-fields token."""

    amount: Decimal
    currency: str
    client_order_id: str
    payment_token: str
    customer: Customer = field(default_factory=Customer)
    order_description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HppOrderRequest:
    amount: Decimal
    currency: str
    client_order_id: str
    success_url: str
    cancel_url: str
    failed_url: str
    pending_url: str | None = None
    mode: Literal["SALE", "AUTHORIZATION"] = "SALE"
    customer: Customer = field(default_factory=Customer)
    order_description: str | None = None
