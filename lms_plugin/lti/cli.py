"""``lms-plugin platform …`` and ``lms-plugin keys …``: thin commands over LTI services."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from lms_plugin.db import DB_INT_MAX
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db
from lms_plugin.lti import keys, services

platform_cli = AppGroup("platform", help="Register LMS platforms (Moodle, Canvas) for LTI 1.3.")
keys_cli = AppGroup("keys", help="The tool's LTI signing keys.")
#: A platform id on the command line: a clear usage error beyond what the database can hold.
PLATFORM_ID = click.IntRange(1, DB_INT_MAX)


def _fail(exc: DomainError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(exc.message)


def _echo_tool_urls() -> None:
    urls = services.tool_urls(current_app.config["LMS_BASE_URL"])
    click.echo("Paste these into the LMS tool registration:")
    click.echo(f"  Login URL (OIDC initiation):   {urls['login_url']}")
    click.echo(f"  Launch / redirect URL:         {urls['launch_url']}")
    click.echo(f"  Public keyset (JWKS) URL:      {urls['jwks_url']}")
    click.echo(f"  Deep linking URL:              {urls['deep_linking_url']}")


def _echo_platform(platform) -> None:
    click.echo(f"Platform {platform.id}: {platform.name}"
               f"{'' if platform.enabled else ' (DISABLED)'}")
    click.echo(f"  organisation:    {platform.organisation.name}")
    click.echo(f"  issuer:          {platform.issuer}")
    click.echo(f"  client id:       {platform.client_id}")
    click.echo(f"  auth login URL:  {platform.auth_login_url}")
    click.echo(f"  auth token URL:  {platform.auth_token_url}")
    click.echo(f"  key set URL:     {platform.key_set_url or '(static public key)'}")
    if platform.token_audience:
        click.echo(f"  token audience:  {platform.token_audience}")
    click.echo(f"  deployment ids:  {', '.join(platform.deployment_ids) or '(none)'}")
    if platform.role_mapping:
        click.echo(f"  role mapping:    {json.dumps(platform.role_mapping)}")
    if platform.grant_org_roles:
        click.echo("  LTI roles grant organisation-wide roles (--grant-org-roles)")
    click.echo(f"  service hosts:   {', '.join(platform.service_hosts)}")


@platform_cli.command("add")
@click.option("--issuer", required=True, help="The platform's issuer (iss), e.g. its site URL.")
@click.option("--client-id", required=True, help="Client id the platform gave the tool.")
@click.option("--auth-login-url", required=True, help="Platform OIDC authorization URL.")
@click.option("--auth-token-url", required=True, help="Platform OAuth2 access token URL.")
@click.option("--key-set-url", help="Platform public keyset (JWKS) URL.")
@click.option("--public-key-file", type=click.File("r"),
              help="A static platform public key (PEM) instead of a key set URL.")
@click.option("--deployment-id", "deployment_ids", multiple=True,
              help="Deployment id (repeatable). Moodle: the tool type id.")
@click.option("--name", help="A label for people (default: the issuer's host).")
@click.option("--organisation", help="Organisation the platform's users belong to.")
@click.option("--token-audience", help="aud for service tokens if not the token URL.")
@click.option("--role-mapping", help='JSON object overriding role mapping, e.g. '
              '\'{"Mentor": ["learner"]}\'.')
@click.option("--grant-org-roles", is_flag=True,
              help="Let this platform's launches grant organisation-wide roles (an "
              "Instructor becomes an author of every course). Off: rights stay in the course.")
@click.option("--allow-host", "allowed_hosts", multiple=True,
              help="Another host whose grade and roster URLs the tool may call (repeatable; "
                   "hosted Canvas: the tenant's host, e.g. hospital.instructure.com).")
def platform_add(issuer, client_id, auth_login_url, auth_token_url, key_set_url,
                 public_key_file, deployment_ids, name, organisation, token_audience,
                 role_mapping, grant_org_roles, allowed_hosts) -> None:
    """Register a platform and print the tool URLs to paste into the LMS."""
    mapping = None
    if role_mapping:
        try:
            mapping = json.loads(role_mapping)
        except ValueError:
            raise click.ClickException("--role-mapping must be a JSON object") from None
    try:
        platform = services.register_platform(
            issuer=issuer, client_id=client_id, auth_login_url=auth_login_url,
            auth_token_url=auth_token_url, key_set_url=key_set_url,
            public_key_pem=public_key_file.read() if public_key_file else None,
            deployment_ids=deployment_ids, name=name, organisation_name=organisation,
            token_audience=token_audience, role_mapping=mapping,
            grant_org_roles=grant_org_roles,
            allowed_hosts=allowed_hosts,
        )
    except DomainError as exc:
        raise _fail(exc) from None
    keys.ensure_key()
    db.session.commit()
    click.echo(f"Registered platform {platform.id} ({platform.name}) for "
               f"{platform.organisation.name}.")
    _echo_tool_urls()


@platform_cli.command("list")
def platform_list() -> None:
    """List registered platforms."""
    platforms = services.list_platforms()
    if not platforms:
        click.echo("No platforms registered.")
    for p in platforms:
        state = "enabled" if p.enabled else "DISABLED"
        click.echo(f"{p.id}\t{state}\t{p.name}\t{p.issuer}\t{p.client_id}\t"
                   f"{p.organisation.name}\tdeployments: {', '.join(p.deployment_ids) or '-'}")


@platform_cli.command("show")
@click.argument("platform_id", type=PLATFORM_ID)
def platform_show(platform_id: int) -> None:
    """Show one platform and the tool URLs."""
    try:
        platform = services.get_platform(platform_id)
    except DomainError as exc:
        raise _fail(exc) from None
    _echo_platform(platform)
    _echo_tool_urls()


def _set_enabled(platform_id: int, enabled: bool) -> None:
    try:
        platform = services.set_enabled(platform_id, enabled)
    except DomainError as exc:
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"Platform {platform.id} ({platform.name}) {'enabled' if enabled else 'disabled'}.")


@platform_cli.command("org-roles")
@click.argument("platform_id", type=int)
@click.argument("setting", type=click.Choice(["on", "off"]))
def platform_org_roles(platform_id: int, setting: str) -> None:
    """Whether this platform's LTI roles grant organisation-wide roles (default off)."""
    try:
        platform = services.set_grant_org_roles(platform_id, setting == "on")
    except DomainError as exc:
        raise _fail(exc) from None
    db.session.commit()
    effect = ("grant organisation-wide roles" if platform.grant_org_roles
              else "stay in their course")
    click.echo(f"Platform {platform.id} ({platform.name}): LTI roles {effect}.")


@platform_cli.command("disable")
@click.argument("platform_id", type=PLATFORM_ID)
def platform_disable(platform_id: int) -> None:
    """Refuse every login and launch from this platform (re-enable with ``enable``)."""
    _set_enabled(platform_id, False)


@platform_cli.command("enable")
@click.argument("platform_id", type=PLATFORM_ID)
def platform_enable(platform_id: int) -> None:
    """Accept logins and launches from this platform again."""
    _set_enabled(platform_id, True)


@platform_cli.command("add-deployment")
@click.argument("platform_id", type=PLATFORM_ID)
@click.argument("deployment_id")
def platform_add_deployment(platform_id: int, deployment_id: str) -> None:
    """Accept launches from another deployment of the tool in this platform."""
    try:
        services.add_deployment(platform_id, deployment_id)
    except DomainError as exc:
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"Deployment {deployment_id} added to platform {platform_id}.")


@platform_cli.command("allow-host")
@click.argument("platform_id", type=int)
@click.argument("host")
def platform_allow_host(platform_id: int, host: str) -> None:
    """Let the tool call grade and roster URLs on HOST for this platform."""
    _set_host(platform_id, host, True)


@platform_cli.command("revoke-host")
@click.argument("platform_id", type=int)
@click.argument("host")
def platform_revoke_host(platform_id: int, host: str) -> None:
    """Stop calling URLs on HOST (an admin-allowed host) for this platform."""
    _set_host(platform_id, host, False)


def _set_host(platform_id: int, host: str, allowed: bool) -> None:
    try:
        platform = services.set_allowed_host(platform_id, host, allowed)
    except DomainError as exc:
        raise _fail(exc) from None
    db.session.commit()
    click.echo(f"Platform {platform.id} service hosts: {', '.join(platform.service_hosts)}")


@keys_cli.command("rotate")
@click.option("--grace-days", type=click.IntRange(min=0), default=7, show_default=True,
              help="Days the replaced key stays published in the JWKS.")
def keys_rotate(grace_days: int) -> None:
    """Add a new signing key: both are published, the new one signs, the old one is retired
    after the grace period."""
    key = keys.rotate(timedelta(days=grace_days))
    db.session.commit()
    click.echo(f"New signing key {key.kid} is active; the previous key stays published for "
               f"{grace_days} day(s).")


@keys_cli.command("list")
def keys_list() -> None:
    """List the tool's keys and their status."""
    keys.retire_expired()
    db.session.commit()
    rows = keys.all_keys()
    if not rows:
        click.echo("No signing keys yet. The first one is generated when a platform is added "
                   "(lms-plugin platform add, or Dynamic Registration) or the JWKS URL "
                   "(/lti/jwks) is first fetched; 'lms-plugin keys rotate' makes one now.")
        return
    for key in rows:
        until = f" until {key.retire_after:%Y-%m-%d %H:%M} UTC" if key.retire_after else ""
        click.echo(f"{key.kid}\t{key.status}{until}\tcreated {key.created_at:%Y-%m-%d %H:%M} UTC")
