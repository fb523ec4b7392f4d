"""Models of the test app: the manual's blog, with webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from thorn import ModelEvent, Q, model_reverser, webhook_model


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return str(self.user)


@webhook_model
class Article(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=128)
    state = models.CharField(max_length=128, default="PENDING")
    body = models.TextField(blank=True, default="")
    author = models.ForeignKey(
        Author,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="articles",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    priority = models.FloatField(default=0)

    class webhooks:
        sender_field = "author.user"

        on_create = ModelEvent("article.created")
        on_change = ModelEvent("article.changed")
        # The article's own URL is gone once it is deleted: point to the list.
        on_delete = ModelEvent(
            "article.removed", reverse=model_reverser("article:list")
        )
        # Only on the transition to PUBLISHED (needs the previous row).
        on_publish = ModelEvent(
            "article.published", state__now_eq="PUBLISHED"
        ).dispatches_on_change()
        # On every save of a published article.
        on_published_save = ModelEvent(
            "article.saved_published", state__eq="PUBLISHED"
        ).dispatches_on_change()
        on_review = ModelEvent(
            "article.review",
            Q(state__eq="PUBLISHED")
            | Q(state__eq="PREVIEW") & ~Q(title__startswith="The"),
        ).dispatches_on_change()
        # Django's Q objects work too.
        on_urgent = ModelEvent(
            "article.urgent",
            models.Q(priority__gte=10.0) & ~models.Q(state__eq="DRAFT"),
        ).dispatches_on_create()
        on_hipri_delete = ModelEvent(
            "article.internal_delete", priority__gte=30.0
        ).dispatches_on_delete()
        on_tag_add = ModelEvent("article.tagged").dispatches_on_m2m_add("tags")
        on_tag_remove = ModelEvent("article.untagged").dispatches_on_m2m_remove("tags")
        on_tag_clear = ModelEvent("article.tags_cleared").dispatches_on_m2m_clear(
            "tags"
        )

        def payload(self, article: Article) -> dict[str, Any]:
            return {
                "id": article.pk,
                "uuid": article.uuid,
                "title": article.title,
                "state": article.state,
                "body": article.body[:1024],
                "priority": article.priority,
            }

        def headers(self, article: Article) -> dict[str, str]:
            return {"X-Article-State": article.state}

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("article:detail", kwargs={"uuid": self.uuid})


@webhook_model(
    on_create=ModelEvent("person.{.username}"),
    on_change=ModelEvent("person.{.username}.changed", active__eq=True),
    on_deactivate=ModelEvent(
        "person.{.username}.deactivated", active__eq=False
    ).dispatches_on_change(),
    on_delete=ModelEvent("person.removed", reverse=lambda person: "/gone/"),
    reverse=model_reverser("article:person", username="username"),
    sender_field="user",
)
class Person(models.Model):
    """The decorator-argument form, with event names formatted from the instance."""

    username = models.CharField(max_length=64, unique=True)
    active = models.BooleanField(default=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    def __str__(self) -> str:
        return self.username

    def webhook_payload(self) -> dict[str, Any]:
        return {"username": self.username, "active": self.active}

    def webhook_headers(self) -> dict[str, str]:
        return {"X-Person-Active": "yes" if self.active else "no"}
