"""Specification of causal trace ids and their propagation through threads and tasks."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import re
import threading

import pytest

from redline.tracing import CausalTraceId, current_trace, start_span, use_trace

SHORT_HEX = re.compile(r"[0-9a-f]{12}/[0-9a-f]{8}")


def test_root_has_the_seed_short_form() -> None:
    """A new root is ``12-hex/8-hex`` with depth 0 and no parent."""
    root = CausalTraceId()
    assert SHORT_HEX.fullmatch(root.full_id)
    assert root.depth == 0
    assert root.parent_span_id is None


def test_child_links_to_its_parent() -> None:
    """A child keeps the trace, gets a new span, names its parent and is one level deeper."""
    root = CausalTraceId()
    child = root.child()
    assert child.trace_id == root.trace_id
    assert child.span_id != root.span_id
    assert child.parent_span_id == root.span_id
    assert child.depth == 1
    assert child.full_id == f"{root.trace_id}/{child.span_id}/{root.span_id}"


def test_sibling_shares_parent_and_depth() -> None:
    """A sibling has the same trace, parent and depth, and a new span id."""
    child = CausalTraceId().child()
    sibling = child.sibling()
    assert sibling.trace_id == child.trace_id
    assert sibling.parent_span_id == child.parent_span_id
    assert sibling.depth == child.depth
    assert sibling.span_id != child.span_id


def test_grandchild_is_two_levels_deep() -> None:
    """Each ``child()`` adds one to the depth."""
    assert CausalTraceId().child().child().depth == 2


def test_delegation_tree_shares_one_trace() -> None:
    """Every span spawned from one orchestrator carries the orchestrator's trace id."""
    orchestrator = CausalTraceId()
    researcher = orchestrator.child()
    writer = orchestrator.child()
    tool_agent = researcher.child()
    assert {s.trace_id for s in (researcher, writer, tool_agent)} == {orchestrator.trace_id}
    assert (researcher.depth, writer.depth, tool_agent.depth) == (1, 1, 2)
    assert tool_agent.parent_span_id == researcher.span_id


def test_from_string_parses_a_child() -> None:
    """``from_string`` reads trace, span and parent back from the seed's example."""
    parsed = CausalTraceId.from_string("a1b2c3d4e5f6/89abcdef/01234567")
    assert parsed.trace_id == "a1b2c3d4e5f6"
    assert parsed.span_id == "89abcdef"
    assert parsed.parent_span_id == "01234567"
    assert parsed.depth == 1


def test_from_string_parses_a_root() -> None:
    """A two-part id parses as a root with no parent and depth 0."""
    parsed = CausalTraceId.from_string("a1b2c3d4e5f6/01234567")
    assert parsed.parent_span_id is None
    assert parsed.depth == 0


def test_str_and_full_id_round_trip() -> None:
    """``str()`` is ``full_id``, and parsing it gives back an equal id for roots and children."""
    root = CausalTraceId()
    child = root.child()
    assert str(child) == child.full_id
    assert CausalTraceId.from_string(str(root)) == root
    assert CausalTraceId.from_string(str(child)) == child


@pytest.mark.parametrize(
    "text",
    [
        "invalid",
        "",
        "a1b2c3d4e5f6",
        "a1b2c3d4e5f6/89abcdef/01234567/76543210",
        "a1b2c3d4e5f6//01234567",
        "a1b2c3d4e5f6/89abcdef/",
        "g1b2c3d4e5f6/89abcdef",
        "a1b2c3d4e5f/89abcdef",
        "a1b2c3d4e5f6/89abcde",
        "a1b2c3d4e5f6/89abcdef/0123",
        "a1b2c3d4e5f6a1b2c3d4e5f6/89abcdef",
        "a1b2c3d4e5f6/ 9abcdef",
        "a1b2c3d4e5f6/0x9abcde",
        "000000000000/89abcdef",
        "a1b2c3d4e5f6/00000000",
    ],
)
def test_from_string_rejects_malformed_ids(text: str) -> None:
    """Wrong part counts, non-hex digits, wrong lengths and all-zero ids raise ValueError."""
    with pytest.raises(ValueError, match=r"trace|span"):
        CausalTraceId.from_string(text)


def test_from_string_accepts_w3c_widths() -> None:
    """A 32-hex trace id and 16-hex span ids, as in a ``traceparent``, parse unchanged."""
    text = "4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7/53ce929d0e0e4736"
    parsed = CausalTraceId.from_string(text)
    assert parsed.full_id == text
    assert parsed.w3c_trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parsed.w3c_span_id == "00f067aa0ba902b7"


def test_from_string_accepts_mixed_widths() -> None:
    """Short and W3C widths mix freely, e.g. a short child span under a W3C parent."""
    parsed = CausalTraceId.from_string("4bf92f3577b34da6a3ce929d0e0e4736/89abcdef/00f067aa0ba902b7")
    assert parsed.span_id == "89abcdef"
    assert parsed.parent_span_id == "00f067aa0ba902b7"


def test_from_string_normalises_to_lowercase() -> None:
    """Upper-case hex is accepted and stored lowercase, so equal ids compare equal."""
    parsed = CausalTraceId.from_string("A1B2C3D4E5F6/89ABCDEF")
    assert parsed == CausalTraceId.from_string("a1b2c3d4e5f6/89abcdef")


def test_w3c_ids_pad_short_ids_with_zeros() -> None:
    """Short ids become valid W3C ids by left-padding with zeros."""
    parsed = CausalTraceId.from_string("a1b2c3d4e5f6/89abcdef")
    assert parsed.w3c_trace_id == "00000000000000000000a1b2c3d4e5f6"
    assert parsed.w3c_span_id == "0000000089abcdef"


def test_children_of_a_w3c_trace_keep_its_trace_id() -> None:
    """A span received from OpenTelemetry spawns children in the same 32-hex trace."""
    received = CausalTraceId.from_string("4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7")
    child = received.child()
    assert child.w3c_trace_id == received.trace_id
    assert child.parent_span_id == "00f067aa0ba902b7"


def test_is_ancestor_of_follows_the_seed() -> None:
    """Ancestry is same trace and strictly deeper: root → grandchild yes, reverse and self no."""
    root = CausalTraceId()
    child = root.child()
    grandchild = child.child()
    assert root.is_ancestor_of(grandchild)
    assert not child.is_ancestor_of(root)
    assert not root.is_ancestor_of(root)


def test_is_ancestor_of_requires_the_same_trace() -> None:
    """A span is never the ancestor of a span in another trace, however deep."""
    assert not CausalTraceId().is_ancestor_of(CausalTraceId().child().child())


def test_ids_are_immutable() -> None:
    """Assigning to a trace id's field raises, so a shared id cannot change under a reader."""
    trace = CausalTraceId()
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.span_id = "01234567"  # type: ignore[misc]


def test_ids_are_hashable_values() -> None:
    """Equal ids hash equal, so they work as dict keys and in sets."""
    trace = CausalTraceId()
    assert {trace, CausalTraceId.from_string(trace.full_id)} == {trace}


def test_constructor_takes_explicit_parts() -> None:
    """Given parts are kept; omitted ids are generated in the short form."""
    trace = CausalTraceId(trace_id="a1b2c3d4e5f6", parent_span_id="01234567", depth=3)
    assert trace.trace_id == "a1b2c3d4e5f6"
    assert re.fullmatch(r"[0-9a-f]{8}", trace.span_id)
    assert trace.depth == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 1},
        {"parent_span_id": "01234567"},
        {"parent_span_id": "01234567", "depth": -1},
        {"trace_id": "xyz"},
    ],
)
def test_constructor_rejects_inconsistent_parts(kwargs: dict[str, object]) -> None:
    """Depth must be 0 exactly for roots, and explicit ids must be well-formed."""
    with pytest.raises(ValueError, match=r"depth|trace_id"):
        CausalTraceId(**kwargs)  # type: ignore[arg-type]


def test_generated_ids_are_unique_in_practice() -> None:
    """Ten thousand children of one root all get distinct span ids."""
    root = CausalTraceId()
    assert len({root.child().span_id for _ in range(10_000)}) == 10_000


def test_no_trace_outside_a_span() -> None:
    """``current_trace()`` is None when no span is active."""
    assert current_trace() is None


def test_start_span_without_current_starts_a_root() -> None:
    """With nothing current, ``start_span()`` makes a new root current, then restores None."""
    with start_span() as span:
        assert current_trace() is span
        assert span.depth == 0
    assert current_trace() is None


def test_nested_spans_form_a_chain() -> None:
    """A span started inside another is its child, and exits restore each level in turn."""
    with start_span() as outer:
        with start_span() as inner:
            assert inner.parent_span_id == outer.span_id
            assert inner.trace_id == outer.trace_id
            assert current_trace() is inner
        assert current_trace() is outer


def test_start_span_with_explicit_trace_uses_it() -> None:
    """``start_span(trace)`` makes exactly that trace current."""
    given = CausalTraceId()
    with start_span(CausalTraceId()), start_span(given) as span:
        assert span is given
        assert current_trace() is given


def test_use_trace_continues_a_received_trace() -> None:
    """A trace received as a string becomes current, and spans inside it are its children."""
    received = CausalTraceId.from_string("a1b2c3d4e5f6/89abcdef")
    with use_trace(received), start_span() as span:
        assert span.trace_id == "a1b2c3d4e5f6"
        assert span.parent_span_id == "89abcdef"


def test_exit_restores_previous_trace_on_error() -> None:
    """An exception inside a span still restores the previous current trace."""
    with start_span() as outer:
        with pytest.raises(RuntimeError), start_span():
            raise RuntimeError("boom")
        assert current_trace() is outer


def test_threads_do_not_see_each_others_spans() -> None:
    """Spans opened concurrently in two threads stay separate and never leak to the caller."""
    both_inside = threading.Barrier(2)
    seen: dict[str, tuple[CausalTraceId, CausalTraceId, CausalTraceId | None]] = {}

    def work(name: str) -> None:
        with start_span(CausalTraceId()) as mine, start_span() as child:
            both_inside.wait(timeout=10)
            seen[name] = (mine, child, current_trace())

    with start_span() as caller:
        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert current_trace() is caller
    for mine, child, current in seen.values():
        assert current is child
        assert child.parent_span_id == mine.span_id
    assert seen["a"][0].trace_id != seen["b"][0].trace_id


def test_copied_context_carries_the_trace_into_a_thread() -> None:
    """Running a thread in ``contextvars.copy_context()`` hands it the caller's trace."""
    result: list[CausalTraceId] = []

    def work() -> None:
        with start_span() as span:
            result.append(span)

    with start_span() as caller:
        thread = threading.Thread(target=contextvars.copy_context().run, args=(work,))
        thread.start()
        thread.join(timeout=10)
    assert result[0].parent_span_id == caller.span_id


def test_asyncio_tasks_inherit_and_isolate_spans() -> None:
    """Each task's span is a child of the span that created it, and tasks never mix."""

    async def main() -> None:
        gate = asyncio.Event()

        async def task() -> tuple[CausalTraceId, CausalTraceId | None]:
            with start_span() as span:
                await gate.wait()
                return span, current_trace()

        with start_span() as outer:
            pending = [asyncio.create_task(task()) for _ in range(3)]
            gate.set()
            results = await asyncio.gather(*pending)
            assert current_trace() is outer
        for span, seen in results:
            assert seen is span
            assert span.parent_span_id == outer.span_id
        assert len({span.span_id for span, _ in results}) == 3

    asyncio.run(main())
