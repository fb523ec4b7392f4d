"""Model events through the outbox are written in the change's own transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from testproject.testapp.models import Article
from thorn.django.models import Delivery, Subscriber

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outbox(settings: Any) -> None:
    settings.THORN_DISPATCHER = "outbox"
    settings.THORN_SIGNAL_HONORS_TRANSACTION = True


def test_a_model_event_is_written_before_the_commit(outbox: None) -> None:
    Subscriber.objects.create(event="article.created", url="https://example.com/h")
    with transaction.atomic():
        Article.objects.create(title="A")
        # Inside the transaction already: no window between commit and write.
        assert Delivery.objects.filter(event="article.created").count() == 1
    assert Delivery.objects.filter(event="article.created").count() == 1


def test_a_rollback_takes_the_model_event_back(outbox: None) -> None:
    Subscriber.objects.create(event="article.created", url="https://example.com/h")

    def create_then_fail() -> None:
        with transaction.atomic():
            Article.objects.create(title="B")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert not Article.objects.exists()
    assert not Delivery.objects.exists()
