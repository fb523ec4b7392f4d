"""A detail view, so every article has the URL its webhooks refer to."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404

from .models import Article


def detail(request: HttpRequest, uuid: str) -> JsonResponse:
    article = get_object_or_404(Article, uuid=uuid)
    return JsonResponse(
        {
            "uuid": str(article.uuid),
            "title": article.title,
            "state": article.state,
            "body": article.body,
            "tags": [t.name for t in article.tags.all()],
        }
    )
