"""Articles in the admin: edit one and watch the webhooks go out."""

from __future__ import annotations

from django.contrib import admin

from .models import Article, Tag


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "state", "author")
    list_filter = ("state",)
    filter_horizontal = ("tags",)


admin.site.register(Tag)
