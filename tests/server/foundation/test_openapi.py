"""The OpenAPI document is complete enough to generate a client from."""

from __future__ import annotations

from litestar.testing import TestClient

PUBLIC = {
    "/api/v1/auth/signup",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/licenses/validate",
    "/api/v1/licenses/activate",
    "/api/v1/licenses/check-in",
    "/api/v1/licenses/deactivate",
    "/api/v1/licenses/features",
    "/api/v1/licenses/usage",
}
PUBLIC_OPERATIONS = {("post", "/api/v1/trials")}


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "patch", "put", "delete"}:
                yield path, method, operation


def test_every_api_operation_documents_its_errors_and_security(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    operations = [op for op in _operations(document) if op[0].startswith("/api/v1")]
    assert len(operations) >= 45
    for path, method, operation in operations:
        errors = [code for code in operation["responses"] if code[0] in "45"]
        assert errors, f"{method.upper()} {path} documents no error response"
        for code in errors:
            content = operation["responses"][code].get("content", {})
            assert "application/problem+json" in content, f"{method.upper()} {path} {code}"
        secured = "security" in operation
        public = path in PUBLIC or (method, path) in PUBLIC_OPERATIONS
        assert secured == (not public), f"{method.upper()} {path} security"
        if method in {"post", "patch"} and "requestBody" in operation:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert "$ref" in schema or "type" in schema or "oneOf" in schema, path


def test_schemas_and_security_scheme(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("LicenseRead", "ActivateRequest", "ValidateResponse", "Problem"):
        assert any(key.endswith(name) for key in schemas), name
    assert document["components"]["securitySchemes"]["bearer"]["type"] == "http"
