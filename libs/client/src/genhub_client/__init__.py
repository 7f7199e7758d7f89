"""Typed async Python client for the genhub public and admin APIs, and a webhook verifier."""

from genhub_client.client import AsyncGenhub, AsyncGenhubAdmin
from genhub_client.errors import GenhubError
from genhub_client.models import (
    App,
    AuditEntry,
    AuditPage,
    CreatedApp,
    CreatedKey,
    GrantResult,
    Job,
    JobError,
    JobOutput,
    JobPage,
    JobTokens,
    JobTotals,
    Key,
    Model,
    Upload,
    UserBalance,
)
from genhub_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "App",
    "AsyncGenhub",
    "AsyncGenhubAdmin",
    "AuditEntry",
    "AuditPage",
    "CreatedApp",
    "CreatedKey",
    "GenhubError",
    "GrantResult",
    "Job",
    "JobError",
    "JobOutput",
    "JobPage",
    "JobTokens",
    "JobTotals",
    "Key",
    "Model",
    "Upload",
    "UserBalance",
    "WebhookVerificationError",
    "verify_webhook",
]
