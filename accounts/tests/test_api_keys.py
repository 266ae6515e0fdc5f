import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.keys import create_api_key, hash_secret, verify_token
from accounts.models import ApiKey, Tenant
from conftest import client_for

pytestmark = pytest.mark.django_db


def test_create_api_key_stores_only_hash() -> None:
    issued = create_api_key("acme", name="ci")
    prefix, secret = issued.token.split(".", 1)
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.prefix == prefix
    assert key.secret_hash == hash_secret(secret)
    assert secret not in key.secret_hash
    assert key.last4 == secret[-4:]


def test_verify_token_rejects_wrong_secret() -> None:
    issued = create_api_key("acme")
    prefix = issued.token.split(".", 1)[0]
    assert verify_token(issued.token) == issued.api_key
    assert verify_token(f"{prefix}.wrong") is None
    assert verify_token("no-dot-here") is None


def test_verify_token_rejects_revoked_key() -> None:
    issued = create_api_key("acme")
    issued.api_key.revoke()
    assert verify_token(issued.token) is None


def test_create_api_key_command_prints_key_last(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_api_key", "--tenant", "globex", "--name", "ops", "--scopes", "documents:read")
    lines = capsys.readouterr().out.strip().splitlines()
    key = verify_token(lines[-1])
    assert key is not None
    assert key.tenant.name == "globex"
    assert key.scopes == ["documents:read"]
    assert Tenant.objects.filter(name="globex").count() == 1


def test_create_api_key_command_rejects_unknown_scope() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "--tenant", "globex", "--scopes", "admin:all")


def test_missing_key_gets_401_json(api_client) -> None:
    response = api_client.get("/v1/documents")
    assert response.status_code == 401
    assert response.json()["error_code"] == "AUTHENTICATION_REQUIRED"


def test_unknown_key_gets_401_json() -> None:
    response = client_for("deadbeef.not-a-real-secret").get("/v1/documents")
    assert response.status_code == 401
    assert response.json()["error_code"] == "INVALID_API_KEY"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_malformed_header_gets_401(api_client) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Bearer something")
    response = api_client.get("/v1/documents")
    assert response.status_code == 401
    assert response.json()["error_code"] == "INVALID_API_KEY"


def test_revoked_key_gets_401() -> None:
    issued = create_api_key("acme")
    issued.api_key.revoke()
    response = client_for(issued.token).get("/v1/documents")
    assert response.status_code == 401


def test_key_without_scope_gets_403() -> None:
    issued = create_api_key("acme", scopes=["jobs:read"])
    response = client_for(issued.token).get("/v1/documents")
    assert response.status_code == 403
    body = response.json()
    assert body["error_code"] == "SCOPE_REQUIRED"
    assert body["details"]["scope"] == "documents:read"


def test_last_used_at_once_a_minute() -> None:
    issued = create_api_key("acme")
    client = client_for(issued.token)
    client.get("/v1/documents")
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert first is not None
    client.get("/v1/documents")
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == first
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        last_used_at=timezone.now() - timezone.timedelta(minutes=2)
    )
    client.get("/v1/documents")
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at > first


def test_rotate_without_grace_stops_old_secret() -> None:
    from accounts.keys import rotate_api_key

    issued = create_api_key("acme")
    rotated = rotate_api_key(issued.api_key)
    assert rotated.token.split(".")[0] == issued.token.split(".")[0]
    assert verify_token(issued.token) is None
    assert verify_token(rotated.token) == issued.api_key


def test_rotate_with_grace_keeps_old_secret_until_deadline() -> None:
    from datetime import timedelta

    from accounts.keys import rotate_api_key

    issued = create_api_key("acme")
    rotated = rotate_api_key(issued.api_key, grace=timedelta(minutes=5))
    assert verify_token(issued.token) == issued.api_key
    assert verify_token(rotated.token) == issued.api_key
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        previous_valid_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert verify_token(issued.token) is None
    assert verify_token(rotated.token) is not None


def test_revoke_ends_grace_period_too() -> None:
    from datetime import timedelta

    from accounts.keys import revoke_api_key, rotate_api_key

    issued = create_api_key("acme")
    rotated = rotate_api_key(issued.api_key, grace=timedelta(hours=1))
    revoke_api_key(ApiKey.objects.get(pk=issued.api_key.pk))
    assert verify_token(issued.token) is None
    assert verify_token(rotated.token) is None


def test_rotate_and_revoke_commands(capsys: pytest.CaptureFixture[str]) -> None:
    issued = create_api_key("acme")
    prefix = issued.api_key.prefix
    call_command("rotate_api_key", prefix, "--grace-minutes", "10")
    new_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert verify_token(new_token) is not None
    assert verify_token(issued.token) is not None
    call_command("revoke_api_key", prefix)
    assert verify_token(new_token) is None
