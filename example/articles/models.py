"""The manual's blog article, with webhooks for every change."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from thorn import ModelEvent, webhook_model


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


@webhook_model
class Article(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=128)
    state = models.CharField(max_length=128, default="PENDING")
    body = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="articles"
    )
    tags = models.ManyToManyField(Tag, blank=True)

    class webhooks:
        sender_field = "author"

        on_create = ModelEvent("article.created")
        on_change = ModelEvent("article.changed")
        on_delete = ModelEvent("article.removed")
        on_publish = ModelEvent(
            "article.published", state__now_eq="PUBLISHED"
        ).dispatches_on_change()
        on_tag_add = ModelEvent("article.tag_added").dispatches_on_m2m_add("tags")
        on_tag_remove = ModelEvent("article.tag_removed").dispatches_on_m2m_remove(
            "tags"
        )
        on_tags_clear = ModelEvent("article.tags_cleared").dispatches_on_m2m_clear(
            "tags"
        )

        def payload(self, article: Article) -> dict[str, Any]:
            return {
                "uuid": article.uuid,
                "title": article.title,
                "state": article.state,
                "body": article.body[:1024],
            }

    def get_absolute_url(self) -> str:
        return reverse("article:detail", kwargs={"uuid": self.uuid})

    def __str__(self) -> str:
        return self.title
