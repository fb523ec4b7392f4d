"""Article URLs of the test app: include at ``articles/`` with namespace ``article``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

app_name = "article"


def article_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("articles")


def article_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    return HttpResponse(f"article {uuid}")


def author_detail(request: HttpRequest, username: str) -> HttpResponse:
    return HttpResponse(f"author {username}")


def person_detail(request: HttpRequest, username: str) -> HttpResponse:
    return HttpResponse(f"person {username}")


urlpatterns = [
    path("", article_list, name="list"),
    path("<uuid:uuid>/", article_detail, name="detail"),
    path("authors/<str:username>/", author_detail, name="author"),
    path("people/<str:username>/", person_detail, name="person"),
]
