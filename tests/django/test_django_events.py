"""Model events: Django model changes reach a real receiver as webhook messages.

Every test delivers to a ``ListenerThread`` on 127.0.0.1 through the default
dispatcher, which returns once the first attempt is over: what has not
arrived when the code under test returns was not sent. Subscribers are
static (``THORN_SUBSCRIBERS``), except in the one test marked as using the
``Subscriber`` model. The database runs in real transactions, so
``transaction.on_commit`` behaves as in production.
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.dispatch import Signal
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from testproject.testapp.models import Article, Author, Person, Tag
from thorn import ImproperlyConfigured, ModelEvent, Q, model_reverser, webhook_model
from thorn.decorators import WebhookCapable
from thorn.exceptions import UnencodablePayload
from thorn.generic.signals import signal_dispatcher

pytestmark = pytest.mark.django_db(transaction=True)

#: What the test project's URLconf includes (``articles/``, namespace
#: ``article``); set here too so these tests do not depend on the rest of it.
ARTICLE_URLS = types.ModuleType("thorn_test_article_urls")
ARTICLE_URLS.urlpatterns = [  # type: ignore[attr-defined]
    path("articles/", include("testproject.testapp.urls", namespace="article")),
]


@pytest.fixture(autouse=True)
def article_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = ARTICLE_URLS


@pytest.fixture
def subscribe(settings: Any, receiver: Any) -> Callable[..., None]:
    """``subscribe(pattern, ...)``: static subscribers posting to the receiver."""

    def subscribe(*patterns: str, **subscribers: Any) -> None:
        setting = {pattern: receiver.url("/hooks") for pattern in patterns}
        setting.update(subscribers)
        settings.THORN_SUBSCRIBERS = setting

    return subscribe


@pytest.fixture
def alice() -> Any:
    return get_user_model().objects.create(username="alice")


@pytest.fixture
def bob() -> Any:
    return get_user_model().objects.create(username="bob")


@pytest.fixture
def connect() -> Iterator[Callable[[ModelEvent, Any], ModelEvent]]:
    """Connect an extra event to a model for one test, disconnected afterwards."""
    connected: list[tuple[ModelEvent, Any]] = []

    def connect(event: ModelEvent, model: Any) -> ModelEvent:
        event.connect_model(model)
        connected.append((event, model))
        return event

    yield connect
    for event, model in connected:
        event.signal_dispatcher.disconnect(sender=model)


def bodies(receiver: Any) -> list[dict[str, Any]]:
    return [json.loads(hook.body) for hook in receiver.hooks]


def events(receiver: Any) -> list[str]:
    return [hook.header("Hook-Event") for hook in receiver.hooks]


def article_data(article: Article, **changes: Any) -> dict[str, Any]:
    data = {
        "id": article.pk,
        "uuid": str(article.uuid),
        "title": article.title,
        "state": article.state,
        "body": article.body,
        "priority": article.priority,
    }
    data.update(changes)
    return data


# -- the documented messages -----------------------------------------------------------


def test_create_sends_the_documented_message_with_the_models_headers(
    subscribe: Any, receiver: Any, alice: Any
) -> None:
    subscribe("article.created")
    article = Article.objects.create(
        title="The Mighty Bear", author=Author.objects.create(user=alice)
    )
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "event": "article.created",
        "ref": f"/articles/{article.uuid}/",
        "sender": alice.pk,
        "data": article_data(article),
    }
    assert hook.header("Hook-Event") == "article.created"
    assert hook.header("X-Article-State") == "PENDING"


def test_change_sends_article_changed_with_the_new_values(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Draft")
    subscribe("article.changed")
    article.title = "Final"
    article.save()
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "event": "article.changed",
        "ref": f"/articles/{article.uuid}/",
        "sender": None,
        "data": article_data(article, title="Final"),
    }


def test_delete_sends_the_events_own_ref_and_the_data_before_deletion(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Gone soon")
    pk = article.pk
    subscribe("article.removed", "article.internal_delete")
    with transaction.atomic():
        article.delete()  # Django clears article.pk before the commit
    (hook,) = receiver.wait_for(1)
    assert hook.json()["ref"] == "/articles/"  # on_delete's own model_reverser
    assert hook.json()["data"]["id"] == pk  # built in post_delete, sent at commit
    assert hook.header("Hook-Event") == "article.removed"


def test_filters_apply_to_delete_events(subscribe: Any, receiver: Any) -> None:
    Article.objects.create(title="low", priority=1.0).delete()
    subscribe("article.internal_delete")
    Article.objects.create(title="low", priority=1.0).delete()
    Article.objects.create(title="high", priority=30.0).delete()
    (hook,) = receiver.wait_for(1)
    assert hook.json()["data"]["title"] == "high"


def test_m2m_add_remove_and_clear_say_which_objects_changed(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Tagged")
    python, django, web = (Tag.objects.create(name=n) for n in ("py", "dj", "web"))
    subscribe("article.tagged", "article.untagged", "article.tags_cleared")
    article.tags.add(python, django, web)
    article.tags.remove(django)
    article.tags.clear()
    receiver.wait_for(3)
    assert events(receiver) == [
        "article.tagged",
        "article.untagged",
        "article.tags_cleared",
    ]
    related = [body.pop("related") for body in bodies(receiver)]
    assert related == [
        {"field": "tags", "pks": sorted([python.pk, django.pk, web.pk])},
        {"field": "tags", "pks": [django.pk]},
        {"field": "tags", "pks": sorted([python.pk, web.pk])},
    ]
    for body in bodies(receiver):
        assert body["ref"] == f"/articles/{article.uuid}/"
        assert body["data"] == article_data(article)


def test_m2m_add_of_objects_already_there_sends_nothing(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Tagged")
    tag = Tag.objects.create(name="py")
    article.tags.add(tag)
    subscribe("article.tagged")
    article.tags.add(tag)
    assert receiver.hooks == []


def test_m2m_changes_made_from_the_other_side_send_nothing(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Tagged")
    tag = Tag.objects.create(name="py")
    subscribe("article.*")
    tag.articles.add(article)
    tag.articles.clear()
    assert receiver.hooks == []
    assert list(article.tags.all()) == []


# -- filters ---------------------------------------------------------------------------


def test_now_eq_sends_only_on_the_transition(subscribe: Any, receiver: Any) -> None:
    subscribe("article.published")
    article = Article.objects.create(title="Story")
    article.state = "PUBLISHED"
    article.save()
    article.title = "Story, corrected"
    article.save()  # still published: no transition
    article.state = "PENDING"
    article.save()
    article.state = "PUBLISHED"
    article.save()
    assert events(receiver) == ["article.published", "article.published"]
    titles = [body["data"]["title"] for body in bodies(receiver)]
    assert titles == ["Story", "Story, corrected"]


def test_now_eq_is_not_fooled_by_a_stale_instance(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Story")
    stale = Article.objects.get(pk=article.pk)
    article.state = "PUBLISHED"
    article.save()
    subscribe("article.published")
    stale.state = "PUBLISHED"  # the database already says PUBLISHED
    stale.save()
    assert receiver.hooks == []


def test_plain_eq_sends_on_every_matching_save(subscribe: Any, receiver: Any) -> None:
    subscribe("article.saved_published")
    article = Article.objects.create(title="Story")
    article.save()
    article.state = "PUBLISHED"
    article.save()
    article.save()
    assert events(receiver) == ["article.saved_published"] * 2


@pytest.mark.parametrize(
    ("state", "title", "sent"),
    [
        ("PUBLISHED", "The Bear", True),
        ("PREVIEW", "A Bear", True),
        ("PREVIEW", "The Bear", False),
        ("PENDING", "A Bear", False),
    ],
)
def test_q_objects_combine_with_or_and_and_not(
    subscribe: Any, receiver: Any, state: str, title: str, sent: bool
) -> None:
    # Q(state=PUBLISHED) | Q(state=PREVIEW) & ~Q(title startswith "The")
    article = Article.objects.create(title=title)
    subscribe("article.review")
    article.state = state
    article.save()
    assert events(receiver) == (["article.review"] if sent else [])


@pytest.mark.parametrize(
    ("priority", "state", "sent"),
    [(10.0, "PENDING", True), (10.0, "DRAFT", False), (9.5, "PENDING", False)],
)
def test_django_q_objects_are_accepted_as_filters(
    subscribe: Any, receiver: Any, priority: float, state: str, sent: bool
) -> None:
    subscribe("article.urgent")
    Article.objects.create(title="News", priority=priority, state=state)
    assert events(receiver) == (["article.urgent"] if sent else [])


def test_filter_keys_need_an_operator() -> None:
    with pytest.raises(ValueError, match="state__eq"):
        ModelEvent("article.changed", state="PUBLISHED")
    with pytest.raises(ValueError, match="operator"):
        ModelEvent("article.changed", state_eq="PUBLISHED")


def test_event_options_are_not_taken_for_filters() -> None:
    event = ModelEvent(
        "article.changed",
        Q(title__startswith="The"),
        timeout=5,
        retry=False,
        state__eq="PUBLISHED",
    )
    assert event.timeout == 5
    assert event.retry is False
    assert event.filter.fields == {"state", "title"}
    assert event.propagate_errors is False


# -- senders ---------------------------------------------------------------------------


def test_a_subscriber_with_a_user_gets_only_that_authors_events(
    settings: Any, receiver: Any, alice: Any, bob: Any
) -> None:
    settings.THORN_SUBSCRIBERS = {
        "article.created": [
            {"url": receiver.url("/alice"), "user": alice.pk},
            {"url": receiver.url("/everyone")},
        ]
    }
    Article.objects.create(title="A", author=Author.objects.create(user=alice))
    Article.objects.create(title="B", author=Author.objects.create(user=bob))
    Article.objects.create(title="C")  # no author: sender is None
    receiver.wait_for(4)
    by_path: dict[str, list[Any]] = {}
    for hook in receiver.hooks:
        by_path.setdefault(hook.path, []).append(hook.json()["sender"])
    assert by_path == {"/alice": [alice.pk], "/everyone": [alice.pk, bob.pk, None]}


def test_stored_subscriber_with_a_user_gets_only_that_authors_events(
    receiver: Any, alice: Any, bob: Any
) -> None:
    # Uses the Subscriber model of thorn.django (the other tests are static).
    from thorn.django.models import Subscriber

    Subscriber.objects.create(event="article.*", url=receiver.url("/db"), user=alice)
    Article.objects.create(title="A", author=Author.objects.create(user=alice))
    Article.objects.create(title="B", author=Author.objects.create(user=bob))
    (hook,) = receiver.wait_for(1)
    assert hook.json()["sender"] == alice.pk
    assert hook.json()["data"]["title"] == "A"


# -- names, the decorator's two forms, Model.webhooks ----------------------------------


def test_event_names_are_formatted_from_the_instance(
    subscribe: Any, receiver: Any, alice: Any
) -> None:
    subscribe("person.*")
    person = Person.objects.create(username="alice", user=alice)
    person.active = False
    person.save()
    assert events(receiver) == ["person.alice", "person.alice.deactivated"]
    created = bodies(receiver)[0]
    assert created == {
        "event": "person.alice",
        "ref": "/articles/people/alice/",  # the decorator's reverse=
        "sender": alice.pk,  # the decorator's sender_field=
        "data": {"username": "alice", "active": True},  # webhook_payload()
    }
    # webhook_headers(), read when each event was sent.
    assert [h.header("X-Person-Active") for h in receiver.hooks] == ["yes", "no"]


def test_a_name_that_expands_to_an_invalid_one_is_logged_not_sent(
    subscribe: Any, receiver: Any, caplog: Any
) -> None:
    subscribe("*")
    with caplog.at_level(logging.ERROR, logger="thorn.events"):
        Person.objects.create(username="two words")
    assert receiver.hooks == []
    assert Person.objects.filter(username="two words").exists()
    assert "person.{.username}" in caplog.text
    assert "whitespace" in caplog.text


def test_a_name_template_must_be_a_valid_format_string() -> None:
    with pytest.raises(ValueError, match="format string"):
        ModelEvent("user.{.username")
    event = ModelEvent("user.{.username}")
    assert event._get_name(types.SimpleNamespace(username="alice")) == "user.alice"


def test_events_of_the_decorator_argument_form_use_their_own_reverse(
    subscribe: Any, receiver: Any
) -> None:
    person = Person.objects.create(username="carol")
    subscribe("person.removed")
    person.delete()
    (hook,) = receiver.wait_for(1)
    assert hook.json()["ref"] == "/gone/"


def test_model_webhooks_gives_the_events_by_attribute_name() -> None:
    assert isinstance(Article.webhooks, WebhookCapable)
    assert Article.webhooks.model is Article
    assert Article.webhooks.sender_field == "author.user"
    assert set(Article.webhooks.events) == {
        "on_create",
        "on_change",
        "on_delete",
        "on_publish",
        "on_published_save",
        "on_review",
        "on_urgent",
        "on_hipri_delete",
        "on_tag_add",
        "on_tag_remove",
        "on_tag_clear",
    }
    on_create = Article.webhooks.events["on_create"]
    assert isinstance(on_create, ModelEvent)
    assert on_create.name == "article.created"
    assert on_create.model is Article
    assert set(Person.webhooks.events) == {
        "on_create",
        "on_change",
        "on_delete",
        "on_deactivate",
    }
    assert isinstance(Person.webhooks.reverse, model_reverser)


def test_send_sends_the_given_data_now(
    subscribe: Any, receiver: Any, alice: Any
) -> None:
    article = Article.objects.create(
        title="Manual", author=Author.objects.create(user=alice)
    )
    subscribe("article.created")
    on_create = Article.webhooks.events["on_create"]
    requests = on_create.send(
        instance=article, data={"custom": True}, headers={"X-Extra": "1"}
    )
    assert len(requests) == 1
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "event": "article.created",
        "ref": f"/articles/{article.uuid}/",
        "sender": alice.pk,
        "data": {"custom": True},
    }
    assert hook.header("X-Extra") == "1"
    assert hook.header("X-Article-State") == "PENDING"


def test_send_from_instance_sends_as_a_signal_would(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Manual")
    subscribe("article.published")
    # Filters are the caller's business here: the article is not published.
    Article.webhooks.events["on_publish"].send_from_instance(article)
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "event": "article.published",
        "ref": f"/articles/{article.uuid}/",
        "sender": None,
        "data": article_data(article),
    }


def test_bulk_update_and_delete_send_nothing_unless_sent_by_hand(
    subscribe: Any, receiver: Any
) -> None:
    for title in ("one", "two"):
        Article.objects.create(title=title)
    subscribe("article.changed", "article.removed")
    Article.objects.update(state="ARCHIVED")
    assert receiver.hooks == []
    # What ModelEvent's docstring says to do instead:
    for article in Article.objects.all():
        Article.webhooks.events["on_change"].send_from_instance(article)
    assert events(receiver) == ["article.changed"] * 2
    assert {b["data"]["state"] for b in bodies(receiver)} == {"ARCHIVED"}
    receiver.clear()
    Article.objects.bulk_create([Article(title="three"), Article(title="four")])
    assert receiver.hooks == []
    # QuerySet.delete() is no bulk operation for signals: Django sends
    # post_delete for each row when something listens (the manual says
    # otherwise), so these are sent.
    Article.objects.all().delete()
    assert events(receiver) == ["article.removed"] * 4


def test_queryset_update_of_a_transition_field_sends_nothing(
    subscribe: Any, receiver: Any
) -> None:
    Article.objects.create(title="one")
    subscribe("article.*")
    Article.objects.filter(title="one").update(state="PUBLISHED")
    assert receiver.hooks == []


# -- raw saves -------------------------------------------------------------------------


def test_raw_saves_send_nothing(subscribe: Any, receiver: Any) -> None:
    subscribe("*")
    article = Article(title="Raw")
    article.save_base(raw=True)
    article.state = "PUBLISHED"
    article.save_base(raw=True)
    assert receiver.hooks == []
    assert Article.objects.get(pk=article.pk).state == "PUBLISHED"


def test_loading_a_fixture_sends_nothing_even_for_its_m2m_data(
    subscribe: Any, receiver: Any, tmp_path: Path
) -> None:
    fixture = tmp_path / "blog.json"
    fixture.write_text(
        json.dumps(
            [
                {"model": "testapp.tag", "pk": 1, "fields": {"name": "py"}},
                {
                    "model": "testapp.article",
                    "pk": 1,
                    "fields": {
                        "uuid": "f3f2b22b-8630-412a-a320-5b2644ed723a",
                        "title": "Loaded",
                        "state": "PUBLISHED",
                        "priority": 50.0,
                        "tags": [1],
                    },
                },
            ]
        )
    )
    subscribe("*")
    call_command("loaddata", str(fixture), verbosity=0)
    call_command("loaddata", str(fixture), verbosity=0)  # again: all updates
    assert receiver.hooks == []
    assert list(Article.objects.get(pk=1).tags.values_list("name", flat=True)) == ["py"]
    # The next real change of a loaded object is sent as usual.
    loaded = Article.objects.get(pk=1)
    loaded.tags.clear()
    assert events(receiver) == ["article.tags_cleared"]


# -- transitions cost one query, the other events none ---------------------------------


def _selects_from(table: str, queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT")
        and f'FROM "{table}"' in q["sql"]
    ]


def test_events_without_now_filters_make_no_query_for_the_previous_row(
    subscribe: Any, receiver: Any
) -> None:
    person = Person.objects.create(username="dave")
    subscribe("person.*")
    with CaptureQueriesContext(connection) as queries:
        person.active = False
        person.save()
    assert events(receiver) == ["person.dave.deactivated"]
    assert _selects_from("testapp_person", queries) == []


def test_now_filters_read_the_previous_row_once_per_save(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Story")
    subscribe("article.published")
    with CaptureQueriesContext(connection) as queries:
        article.state = "PUBLISHED"
        article.save()
    assert events(receiver) == ["article.published"]
    assert len(_selects_from("testapp_article", queries)) == 1
    assert "_thorn_previous" not in article.__dict__  # dropped after post_save
    with CaptureQueriesContext(connection) as queries:
        Article.objects.create(title="New")  # nothing to read for a new row
    assert _selects_from("testapp_article", queries) == []


# -- transactions ----------------------------------------------------------------------


def test_webhooks_of_a_transaction_go_out_together_at_commit(
    subscribe: Any, receiver: Any
) -> None:
    subscribe("article.*")
    with transaction.atomic():
        article = Article.objects.create(title="One")
        article.state = "PUBLISHED"
        article.save()
        Article.objects.create(title="Two")
        assert receiver.hooks == []
    assert events(receiver) == [
        "article.created",
        "article.changed",
        "article.published",
        "article.saved_published",
        "article.review",
        "article.created",
    ]
    # Each message is the instance as it was when the signal fired.
    assert [b["data"]["state"] for b in bodies(receiver)][:2] == [
        "PENDING",
        "PUBLISHED",
    ]


def test_webhooks_of_a_rolled_back_transaction_are_dropped(
    subscribe: Any, receiver: Any
) -> None:
    article = Article.objects.create(title="Kept")
    subscribe("article.*")
    with transaction.atomic():
        Article.objects.create(title="Lost")
        article.tags.add(Tag.objects.create(name="lost"))
        article.delete()
        transaction.set_rollback(True)
    assert receiver.hooks == []
    assert list(Article.objects.values_list("title", flat=True)) == ["Kept"]


def test_a_rolled_back_savepoint_drops_only_its_webhooks(
    subscribe: Any, receiver: Any
) -> None:
    subscribe("article.created")
    with transaction.atomic():
        Article.objects.create(title="Outer")
        with transaction.atomic():
            Article.objects.create(title="Inner")
            transaction.set_rollback(True)  # of the savepoint only
    assert [b["data"]["title"] for b in bodies(receiver)] == ["Outer"]


def test_without_signal_honors_transaction_webhooks_go_out_at_once(
    settings: Any, subscribe: Any, receiver: Any
) -> None:
    settings.THORN_SIGNAL_HONORS_TRANSACTION = False
    subscribe("article.created")
    with transaction.atomic():
        Article.objects.create(title="Told too early")
        assert events(receiver) == ["article.created"]
        transaction.set_rollback(True)
    assert not Article.objects.exists()


def test_an_event_can_honor_the_transaction_against_the_setting(
    settings: Any, subscribe: Any, receiver: Any, connect: Any
) -> None:
    settings.THORN_SIGNAL_HONORS_TRANSACTION = False
    connect(
        ModelEvent(
            "tag.created", signal_honors_transaction=True
        ).dispatches_on_create(),
        Tag,
    )
    subscribe("tag.created")
    with transaction.atomic():
        Tag.objects.create(name="rolled back")
        transaction.set_rollback(True)
    assert receiver.hooks == []


# -- errors ----------------------------------------------------------------------------


def broken_event(**options: Any) -> ModelEvent:
    """An event whose payload cannot be encoded (an object is not JSON)."""
    return ModelEvent(
        "tag.created", request_data={"oops": object()}, **options
    ).dispatches_on_create()


def test_send_errors_are_logged_and_the_save_goes_ahead(
    subscribe: Any, receiver: Any, connect: Any, caplog: Any
) -> None:
    connect(broken_event(), Tag)
    subscribe("tag.created")
    with caplog.at_level(logging.ERROR, logger="thorn.events"):
        tag = Tag.objects.create(name="python")
    assert Tag.objects.filter(pk=tag.pk).exists()
    assert receiver.hooks == []
    (record,) = [r for r in caplog.records if r.name == "thorn.events.model"]
    assert record.exc_info is not None
    assert record.exc_info[0] is UnencodablePayload
    assert f"Tag pk={tag.pk}" in record.getMessage()
    assert "propagate_errors=True" in record.getMessage()


def test_propagate_errors_raises_from_save_and_rolls_back_its_transaction(
    subscribe: Any, connect: Any
) -> None:
    connect(broken_event(propagate_errors=True, signal_honors_transaction=False), Tag)
    subscribe("tag.created")
    with pytest.raises(UnencodablePayload), transaction.atomic():
        Tag.objects.create(name="python")
    assert not Tag.objects.exists()


def test_propagate_errors_raises_from_the_commit_when_the_send_waited(
    subscribe: Any, connect: Any
) -> None:
    connect(broken_event(propagate_errors=True), Tag)
    subscribe("tag.created")
    with pytest.raises(UnencodablePayload):
        Tag.objects.create(name="python")  # autocommit: the commit is the save
    # The row was committed before the webhook was attempted.
    assert Tag.objects.filter(name="python").exists()


def test_payload_errors_are_logged_like_send_errors(
    subscribe: Any, receiver: Any, connect: Any, caplog: Any
) -> None:
    def reverse(tag: Tag) -> str:
        raise LookupError("no URL for tags")

    connect(ModelEvent("tag.created", reverse=reverse).dispatches_on_create(), Tag)
    subscribe("tag.created")
    with caplog.at_level(logging.ERROR, logger="thorn.events"):
        Tag.objects.create(name="python")
    assert receiver.hooks == []
    assert "LookupError" in caplog.text


# -- configuration errors --------------------------------------------------------------


def test_a_custom_event_without_a_dispatch_mechanism_is_improperly_configured() -> None:
    class Thing:
        class webhooks:
            on_x = ModelEvent("thing.x")

    with pytest.raises(ImproperlyConfigured) as excinfo:
        webhook_model(Thing)
    message = str(excinfo.value)
    assert "Thing.webhooks.on_x" in message
    assert ".dispatches_on_change()" in message


def test_an_event_declared_twice_is_improperly_configured() -> None:
    class Thing:
        class webhooks:
            on_x = ModelEvent("thing.x").dispatches_on_change()

    with pytest.raises(ImproperlyConfigured, match="on_x"):
        webhook_model(on_x=ModelEvent("thing.y").dispatches_on_change())(Thing)


def test_a_trailing_comma_in_the_nested_class_is_explained() -> None:
    class Thing:
        class webhooks:
            on_change = (ModelEvent("thing.changed"),)

    with pytest.raises(TypeError, match="trailing comma"):
        webhook_model(Thing)


def test_unknown_decorator_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="on_<something>"):
        webhook_model(sender="author")(type("Thing", (), {}))


def test_one_event_cannot_serve_two_models(connect: Any) -> None:
    event = connect(ModelEvent("tag.created").dispatches_on_create(), Tag)
    with pytest.raises(ImproperlyConfigured, match="one ModelEvent per model"):
        event.connect_model(Author)


def test_m2m_dispatch_needs_a_many_to_many_field() -> None:
    event = ModelEvent("tag.linked").dispatches_on_m2m_add("name")
    with pytest.raises(ImproperlyConfigured, match="many-to-many field 'name'"):
        event.connect_model(Tag)


# -- custom signal dispatchers ---------------------------------------------------------


def test_a_custom_signal_dispatcher_connects_an_event_to_any_signal(
    subscribe: Any, receiver: Any
) -> None:
    archived = Signal()

    class dispatch_on_archive(signal_dispatcher):
        def setup_signals(self) -> dict[Any, Any]:
            return {archived: self.on_archived}

        def on_archived(self, sender: Any, instance: Any, **kwargs: Any) -> Any:
            return self(instance, **kwargs)

    event = ModelEvent(
        "article.archived",
        signal_dispatcher=dispatch_on_archive,
        signal_honors_transaction=False,
    )
    event.connect_model(Article)
    article = Article.objects.create(title="Old")
    subscribe("article.archived")
    archived.send(sender=Article, instance=article)
    (hook,) = receiver.wait_for(1)
    assert hook.json()["event"] == "article.archived"
    assert hook.json()["data"] == article_data(article)


# -- URL references --------------------------------------------------------------------


def test_model_reverser_reads_args_kwargs_and_nested_attributes(alice: Any) -> None:
    article = Article.objects.create(
        title="Ref", author=Author.objects.create(user=alice)
    )
    by_kwarg = model_reverser("article:detail", uuid="uuid")
    by_nested_arg = model_reverser("article:author", "author.user.username")
    by_nested_kwarg = model_reverser("article:author", username="author.user.username")
    assert by_kwarg(article) == f"/articles/{article.uuid}/"
    assert by_nested_arg(article) == "/articles/authors/alice/"
    assert by_nested_kwarg(article) == "/articles/authors/alice/"
    assert by_kwarg.reverse_arguments(article) == ([], {"uuid": article.uuid})
    assert (
        repr(by_nested_arg)
        == "model_reverser('article:author', 'author.user.username')"
    )
    with pytest.raises(TypeError, match="attribute name"):
        model_reverser("article:detail", uuid=article.uuid)  # a value, not a name


def test_thorn_base_url_is_put_in_front_of_relative_refs(
    settings: Any, subscribe: Any, receiver: Any, connect: Any
) -> None:
    settings.THORN_BASE_URL = "https://blog.example.com/"
    connect(
        ModelEvent(
            "tag.created", reverse=lambda tag: f"https://tags.example.com/{tag.name}"
        ).dispatches_on_create(),
        Tag,
    )
    subscribe("article.created", "tag.created")
    article = Article.objects.create(title="Absolute")
    Tag.objects.create(name="py")
    assert [b["ref"] for b in bodies(receiver)] == [
        f"https://blog.example.com/articles/{article.uuid}/",
        "https://tags.example.com/py",  # already absolute: left alone
    ]


def test_ref_is_none_without_any_way_to_reverse(
    subscribe: Any, receiver: Any, connect: Any
) -> None:
    connect(ModelEvent("tag.created").dispatches_on_create(), Tag)
    subscribe("tag.created")
    Tag.objects.create(name="py")
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "event": "tag.created",
        "ref": None,
        "sender": None,
        "data": {},
    }


# -- the generic subscriber mixin ------------------------------------------------------


def test_subscriber_model_mixin_round_trips_and_signs() -> None:
    from thorn.generic.models import AbstractSubscriber, SubscriberModelMixin
    from thorn.subscribers import AbstractSubscriber as CoreAbstractSubscriber
    from thorn.utils.hmac import verify

    class Row(SubscriberModelMixin):
        def __init__(self, **fields: Any) -> None:
            self.__dict__.update(fields)

    row = Row.from_dict(
        event="article.*",
        url="https://example.com/hook",
        content_type="application/json",
        hmac_secret="s3cret",
        hmac_digest="sha256",
        uuid="0b6e7c5e-2f7c-4a4e-8f0e-1f1d0c9a1100",
        user=7,
    )
    assert row.as_dict() == {
        "event": "article.*",
        "url": "https://example.com/hook",
        "content_type": "application/json",
        "hmac_secret": "s3cret",
        "hmac_digest": "sha256",
        "uuid": "0b6e7c5e-2f7c-4a4e-8f0e-1f1d0c9a1100",
        "user": 7,
    }
    assert verify(row.sign(b"body"), "sha256", "s3cret", b"body")
    assert AbstractSubscriber is CoreAbstractSubscriber


def test_an_apps_webhook_model_sends_its_models_events_through_that_app(
    thorn_app: Any,
) -> None:
    from thorn import Thorn

    other = Thorn(set_as_current=False)
    own = Thorn(set_as_current=False)
    decorated: list[Any] = []
    try:

        class Thing:
            class webhooks:
                on_create = ModelEvent("thing.created")
                on_mine = ModelEvent("thing.mine", app=own).dispatches_on_change()

        assert other.webhook_model(Thing) is Thing
        decorated.append(Thing)
        assert Thing.webhooks.events["on_create"].app is other
        assert Thing.webhooks.events["on_mine"].app is own  # its own app stays

        class Gadget:
            pass

        other.webhook_model(on_create=ModelEvent("gadget.created"))(Gadget)
        decorated.append(Gadget)
        assert Gadget.webhooks.events["on_create"].app is other
    finally:
        for model in decorated:
            for event in model.webhooks.events.values():
                event.signal_dispatcher.disconnect(sender=model)
        other.close()
        own.close()


def test_an_apps_model_reverser_uses_that_app_and_pickles() -> None:
    import pickle

    from thorn import Thorn

    app = Thorn(set_as_current=False)
    try:
        reverser = app.model_reverser("article-detail", uuid="uuid")
        assert isinstance(reverser, model_reverser)
        assert type(reverser).app is app
        assert app.model_reverser is type(reverser)  # made once
        app.set_current()
        again = pickle.loads(pickle.dumps(reverser))  # noqa: S301 (our own bytes)
        assert type(again) is app.model_reverser
        assert (again.view_name, again.args, again.kwargs) == (
            "article-detail",
            (),
            {"uuid": "uuid"},
        )
    finally:
        app.close()
