import pytest

pytestmark = pytest.mark.asyncio

MONEY_ROUTES = ["/payment", "/capture", "/refund", "/cancel"]


async def test_every_route_documents_bearer_auth_and_examples(client):
    spec = (await client.get("/openapi.json")).json()
    paths = {path.removeprefix("/api/v1/netvalve"): item for path, item in spec["paths"].items()}

    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in [*MONEY_ROUTES, "/hpf/session"]:
        operation = paths[path]["post"]
        assert operation["security"] == [{"HTTPBearer": []}], path
        schema_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = spec["components"]["schemas"][schema_name.rsplit("/", 1)[-1]]
        assert schema.get("examples"), path
        assert {"401", "403"} <= set(operation["responses"]), path
    for path in MONEY_ROUTES:
        parameters = {p["name"] for p in paths[path]["post"]["parameters"]}
        assert "Idempotency-Key" in parameters
        assert "202" in paths[path]["post"]["responses"]
    declined = paths["/payment"]["post"]["responses"]["402"]["content"]["application/json"]
    assert declined["schema"]["$ref"].endswith("/DeclineResponse")
