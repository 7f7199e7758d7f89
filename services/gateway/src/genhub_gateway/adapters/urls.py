"""SSRF checks for URLs apps hand us (webhook URLs, input image URLs), via the platform's
netguard: loopback, private, link-local and metadata addresses are refused unless the
deployment allows private addresses (GATEWAY_ALLOW_PRIVATE_URLS, set by the local stack).

The gateway checks at acceptance time so a bad URL is a clear 422 now rather than a failed
delivery later; the notifier and storage check again (pinned) when they actually connect.
"""

from genhub_platform.errors import ApiError
from genhub_platform.netguard import ResolutionFailed, Resolver, UrlGuard, UrlRefused
from genhub_platform.netguard.guard import system_resolver


class UrlChecker:
    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._webhooks = UrlGuard(
            allow_private=allow_private, require_https=False, resolver=resolver
        )
        self._images = UrlGuard(allow_private=allow_private, require_https=True, resolver=resolver)

    async def webhook(self, url: str, field: str) -> None:
        await self._check(self._webhooks, url, field)

    async def image(self, url: str, field: str) -> None:
        await self._check(self._images, url, field)

    @staticmethod
    async def _check(guard: UrlGuard, url: str, field: str) -> None:
        try:
            await guard.check(url)
        except UrlRefused as exc:
            raise url_refused(field, exc.code, exc.message) from None
        except ResolutionFailed as exc:
            raise url_refused(field, "unresolvable", str(exc)) from None


def url_refused(field: str, reason: str, message: str) -> ApiError:
    return ApiError(
        422,
        "url_refused",
        f"The URL in {field} is not allowed: {message}.",
        details=[{"field": field, "message": message, "type": reason}],
    )
