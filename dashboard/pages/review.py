"""Review (`/review`): flagged transcripts and saved test cases, filtered, played, triaged and exported.

Everything shown comes from the store on each load, so what one tester saves appears for another after a
reload, and survives a restart. The page only turns filters into ``Store.list_cases`` arguments and edits into
``Store.update_case`` / ``delete_case`` and ``evaluation.export.export_cases`` calls.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime

import gradio as gr
import pandas as pd

from dashboard import confirm
from dashboard.config import DashboardConfig
from dashboard.record_view import session_choice
from dashboard.review_view import (
    ALL,
    COLUMNS,
    KIND_CHOICES,
    STATUS_CHOICES,
    Filters,
    boxes_after_save,
    cases_table,
    empty_hint,
    extra_labels_text,
)
from dashboard.shared import (
    ACCENTS,
    AGAIN,
    DEVICES,
    EACH,
    NOISE_CONDITIONS,
    WIDE_TABLE,
    disabled_while,
    esc,
    get_store,
    parse_extra_labels,
    render_diff,
    without_paths,
)
from evaluation.export import export_cases, unused_folder
from evaluation.store import Case, CaseConflict, CaseNotFound, Store, StoreError

logger = logging.getLogger(__name__)

DELETE_ACTION = "delete-case"
EDIT_NAMES = ("status", "reference", "accent", "noise", "device", "other labels", "notes")  # the boxes _save reads
# a cleared reference was saved, and validation skipped the case ("the reference text is empty") without a word here
BLANK_REFERENCE = "The reference is empty: validation skips a case without one. Type what was said; nothing was saved."


@dataclass
class _Listing:
    """The filters and the table of cases."""

    kind: gr.Dropdown
    status: gr.Dropdown
    model: gr.Dropdown
    label: gr.Dropdown
    session: gr.Dropdown  # a Record session (its takes)
    refresh: gr.Button
    table: gr.Dataframe

    @property
    def filters(self) -> list:
        """The filter components, in the order :class:`Filters` takes them."""
        return [self.kind, self.status, self.model, self.label, self.session]


@dataclass
class _Detail:
    """The panel of the case picked in the table: play, compare, edit, delete with confirmation."""

    group: gr.Group
    fields: list  # heading, audio, diff, new status, reference, accent, noise, device, extra labels, notes
    save: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    confirm: gr.Button
    cancel: gr.Button

    @property
    def edits(self) -> list:
        """What ``_save`` reads: new status, reference, accent, noise, device, extra labels, notes."""
        return self.fields[3:]


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    gr.Markdown("## Review\nFlagged transcripts and saved test cases. Click a row to play, compare and triage it.")
    listing = _listing()
    selected = gr.State(None)  # the case in the detail panel, as it was opened (or last saved) there
    pending = gr.State(None)  # the Confirmation the delete question issued (server-side: no client can set it)
    detail = _detail()
    message = gr.Markdown(elem_id="review-message")
    with gr.Accordion("Export as a validation dataset", open=False):
        fmt = gr.Radio(
            [("Hugging Face datasets folder", "datasets"), ("CSV + WAV", "csv")], value="datasets", label="Format"
        )
        export = gr.Button("Export the cases shown", elem_id="review-export")
        # shown with a file to download (empty, it was a blank box; a refused export drew a large Error badge on it)
        export_file = gr.File(label="Download", interactive=False, visible=False, elem_id="review-export-file")
        export_note = gr.Markdown(elem_id="review-export-note")

    store = get_store(config.data_dir)
    _wire_listing(page, store, listing, message)
    _wire_detail(store, listing, detail, selected, pending, message)

    def run_export(f, *v):
        return _export(store, config, f, Filters(*v))

    outputs = [export_file, export_note]
    disabled_while(export, "review_export", run_export, [fmt, *listing.filters], outputs, show_progress_on=outputs[1:])


# id and "seconds" on one line; labels wide enough for "session=<12 hex digits>," (at 9% a Record take's labels
# broke inside their words at 1280 px: "tes ter-07", "165 12ced84ff", "past ed prompts")
REVIEW_WIDTHS = ["13%", "6%", "6%", "9%", "8%", "7%", "18%", "7%", "13%", "13%"]


def _listing() -> _Listing:
    with gr.Row():
        kind = gr.Dropdown(KIND_CHOICES, value=ALL, label="Kind", elem_id="review-kind")
        status = gr.Dropdown([("all", ALL), *STATUS_CHOICES], value=ALL, label="Status", elem_id="review-status")
        model = gr.Dropdown([ALL], value=ALL, label="Model", elem_id="review-model")
        label = gr.Dropdown([ALL], value=ALL, label="Label", elem_id="review-label")
        session = gr.Dropdown([ALL], value=ALL, label="Record session", elem_id="review-session")
        refresh = gr.Button("Refresh", scale=0, elem_id="review-refresh")
    table = gr.Dataframe(
        pd.DataFrame(columns=COLUMNS),
        interactive=False,
        wrap=True,
        max_height=420,
        column_widths=REVIEW_WIDTHS,
        elem_id="review-table",
        elem_classes=[WIDE_TABLE],  # at 820 px its words broke ("sta tus"): scrolls sideways instead
    )
    return _Listing(kind, status, model, label, session, refresh, table)


def _detail() -> _Detail:
    with gr.Group(visible=False) as group:
        heading = gr.Markdown(elem_id="review-heading")
        audio = gr.Audio(type="filepath", interactive=False, label="Audio", elem_id="review-audio")
        diff = gr.HTML(elem_id="review-diff")
        new_status = gr.Radio(STATUS_CHOICES, label="Status", elem_id="review-new-status")
        reference = gr.Textbox(label="Reference or correction", lines=2, elem_id="review-reference")
        with gr.Row():
            accent = gr.Dropdown(ACCENTS, label="Accent", allow_custom_value=True, elem_id="review-accent")
            noise = gr.Dropdown(NOISE_CONDITIONS, label="Noise condition", allow_custom_value=True)
            device = gr.Dropdown(DEVICES, label="Device", allow_custom_value=True)
        extra = gr.Textbox(label="Other labels (key=value, one a line)", lines=2, elem_id="review-extra-labels")
        notes = gr.Textbox(label="Notes", lines=1)
        with gr.Row():
            save = gr.Button("Save changes", variant="primary", elem_id="review-save")
            delete = gr.Button("Delete", variant="stop", elem_id="review-delete")
        with gr.Row(visible=False) as confirm_row:
            gr.Markdown("Delete this case and its audio for good?")
            confirm_button = gr.Button("Yes, delete", variant="stop", elem_id="review-confirm-delete")
            cancel = gr.Button("Cancel", elem_id="review-cancel-delete")
    fields = [heading, audio, diff, new_status, reference, accent, noise, device, extra, notes]
    return _Detail(group, fields, save, delete, confirm_row, confirm_button, cancel)


def _wire_listing(page: gr.Blocks, store: Store, listing: _Listing, message) -> None:
    def list_table(*values):
        """The table for the filters, and a line when they match nothing (an empty table said nothing)."""
        frame = cases_table(store, Filters(*values))
        return frame, ("" if len(frame) else empty_hint(store.list_cases(), frame))

    def reload(*values):
        """What a page load shows: the filters' choices, the table, and the hint while the store is empty."""
        cases = store.list_cases()  # once for the filters' choices and the hint
        frame = cases_table(store, Filters(*values))
        return (*_filter_choices(store, cases), frame, empty_hint(cases, frame))

    shown = [listing.model, listing.label, listing.session, listing.table, message]
    page.load(reload, listing.filters, shown, api_name="review_load")
    # Refresh redraws as a reload does: a case saved on another page since, with the table alone, left the
    # "nothing to review yet" hint above it and its model and labels out of the filters.
    listing.refresh.click(reload, listing.filters, shown, api_name="review_refresh", trigger_mode=AGAIN)
    gr.on(
        [f.change for f in listing.filters],
        list_table,
        listing.filters,
        [listing.table, message],
        api_name="review_list",
    )


def _wire_detail(store: Store, listing: _Listing, detail: _Detail, selected, pending, message) -> None:
    """Picking a row, saving edits, and deleting behind the server-issued confirmation."""

    def choose(evt: gr.SelectData):
        row = evt.row_value or []
        return _show(store, str(row[0]) if row else None)

    def ask_delete(case: Case | None):
        if not case:
            raise gr.Error("Pick a case in the table first.")
        return gr.Row(visible=True), confirm.issue(DELETE_ACTION, case.id)

    def delete_case(case: Case | None, confirmation, *values):
        if not (case and confirm.accepts(confirmation, DELETE_ACTION, case.id)):
            raise gr.Error("Press Delete and confirm again: deleting needs the confirmation step.")
        return (*_delete(store, case.id), None, cases_table(store, Filters(*values)))

    shown = [selected, detail.group, detail.confirm_row, *detail.fields]  # a row clicked as the last loaded: dropped
    listing.table.select(choose, None, shown, api_name="review_select", trigger_mode=EACH).then(
        lambda: None, None, pending, api_name="review_forget_confirmation"
    )
    detail.save.click(
        lambda case, *values: _save(store, case, *values),
        [selected, *detail.edits],
        [message, detail.fields[2], selected, *detail.edits],  # the diff and WER as saved; the case as saved
        api_name="review_save",
        show_progress_on=[message],  # a refused save: one Error badge (it drew one over the diff as well)
        trigger_mode=AGAIN,  # pressed again during a save, after another edit: the box kept it, the store did not
    ).then(  # a label or model added by the edit is offered in the filters at once, not after a Refresh
        lambda *v: (*_filter_choices(store, store.list_cases()), cases_table(store, Filters(*v))),
        listing.filters,
        [listing.model, listing.label, listing.session, listing.table],
        api_name="review_refresh_after_save",
        trigger_mode=AGAIN,  # after the last save too
    )
    # a filter or Refresh that hides the case on show closes its panel (it stayed open, editable, under a table
    # that no longer listed it); read from the filters, not the table, which another handler redraws meanwhile
    gr.on(
        [*(f.change for f in listing.filters), listing.refresh.click],
        lambda case, *values: detail_if_listed(store, case, Filters(*values)),
        [selected, *listing.filters],
        [selected, detail.group, detail.confirm_row, pending],
        api_name="review_close_hidden",
    )
    detail.delete.click(ask_delete, selected, [detail.confirm_row, pending], api_name="review_ask_delete")
    detail.cancel.click(
        lambda: (gr.Row(visible=False), None), None, [detail.confirm_row, pending], api_name="review_cancel_delete"
    )
    detail.confirm.click(
        delete_case,
        [selected, pending, *listing.filters],
        [selected, detail.group, detail.confirm_row, message, pending, listing.table],
        api_name="review_delete",
    )


def _filter_choices(store: Store, cases: list[Case]) -> tuple[gr.Dropdown, gr.Dropdown, gr.Dropdown]:
    models = sorted({c.model for c in cases if c.model})
    labels = sorted({f"{k}={v}" for c in cases for k, v in c.labels.items()})
    sessions = [session_choice(s) for s in store.recordings.list_sessions()]
    return (
        gr.Dropdown(choices=[ALL, *models]),
        gr.Dropdown(choices=[ALL, *labels]),
        gr.Dropdown(choices=[ALL, *sessions]),
    )


def detail_if_listed(store: Store, case: Case | None, filters: Filters) -> tuple:
    """The panel stays as it is while its case is listed; a case the filters hide (or one deleted meanwhile) has
    its panel closed and its pending delete confirmation dropped."""
    if not case or any(c.id == case.id for c in filters.cases(store)):
        return (gr.skip(),) * 4
    return None, gr.Group(visible=False), gr.Row(visible=False), None


def _show(store: Store, case_id: str | None) -> tuple:
    hidden = (None, gr.Group(visible=False), gr.Row(visible=False), *[gr.skip()] * 10)
    if not case_id:
        return hidden
    try:
        case = store.get_case(case_id)
    except CaseNotFound:
        gr.Warning(f"Case {case_id} was deleted by someone else; press Refresh.")
        return hidden
    kind = "Flag" if case.kind == "flag" else "Test case"
    reason = f" · reason: {esc(case.reason)}" if case.reason else ""
    heading = (
        f"### {kind} `{case.id}`\n{case.duration:.1f} s · {esc(case.model)} on {esc(case.backend)}"
        f" · saved {case.created_at[:16].replace('T', ' ')} UTC{reason}"
    )
    extra = extra_labels_text(case)
    return (
        case,  # as opened: a save writes only what was changed since (see ``Store.update_case``)
        gr.Group(visible=True),
        gr.Row(visible=False),
        heading,
        case.audio_path,
        render_diff(case.reference, case.transcript),
        case.status,
        case.reference,
        case.labels.get("accent", ""),
        case.labels.get("noise", ""),
        case.labels.get("device", ""),
        extra,
        case.notes,
    )


def _save(store: Store, opened: Case | None, *boxes: str) -> tuple:
    """Save the panel's edits (``boxes``: status, reference, accent, noise, device, other labels, notes) to the
    case ``opened`` (as shown): the message, the redrawn diff, the case as saved and the boxes it changed. Only what
    was changed here is written; another tab's change of the same field since is refused (it was overwritten
    without a word), of another field kept and shown."""
    status, reference, accent, noise, device, extra, notes = boxes
    if not opened:
        raise gr.Error("Pick a case in the table first.")
    others = parse_extra_labels(extra)
    labels = {**others, "accent": accent or "", "noise": noise or "", "device": device or ""}
    try:
        if not (reference or "").strip() and store.get_case(opened.id).reference.strip():
            raise gr.Error(BLANK_REFERENCE)
        case = store.update_case(
            opened.id, status=status, labels=labels, reference=reference, notes=notes, opened=opened
        )
    except CaseNotFound as exc:
        raise gr.Error(f"{without_paths(str(exc), store.db_path)}; it may have been deleted by someone else.") from exc
    except CaseConflict as exc:
        raise gr.Error(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from exc
    except StoreError as exc:  # a label named as a column of the exports
        raise gr.Error(f"Other labels, {exc}; nothing was saved.") from exc
    redrawn = boxes_after_save(case, list(boxes), others)
    kept = ", ".join(name for name, box in zip(EDIT_NAMES, redrawn, strict=True) if box is not None)
    message = f"Saved `{case.id}`: status {case.status}." + (
        f" Changed elsewhere meanwhile, kept: {kept}." if kept else ""
    )
    return (
        message,
        render_diff(case.reference, case.transcript),
        case,
        *(gr.skip() if b is None else b for b in redrawn),
    )


def _delete(store: Store, case_id: str | None) -> tuple:
    if not case_id:
        raise gr.Error("Pick a case in the table first.")
    try:
        store.delete_case(case_id)
    except CaseNotFound:
        pass  # already gone: the outcome the tester asked for
    return None, gr.Group(visible=False), gr.Row(visible=False), f"Deleted `{case_id}`."


def _export(store: Store, config: DashboardConfig, fmt: str, filters: Filters) -> tuple[gr.File, str]:
    cases = filters.cases(store)
    if not cases:
        raise gr.Error("No cases match the filters: nothing to export.")
    out_dir = unused_folder(config.export_dir / f"cases-{datetime.now(UTC):%Y%m%d-%H%M%S}-{fmt}")
    try:
        folder = export_cases(cases, out_dir, fmt)
    except ValueError as exc:  # a label named as an export column (on a case saved before such names were refused)
        raise gr.Error(str(exc)) from exc
    archive = shutil.make_archive(str(out_dir), "zip", root_dir=folder)
    note = (
        f"Exported {len(cases)} case(s) to `{folder}` on the server. Validate on it with dataset "
        f"`{folder}` (Validate page, local folder) or `python -m evaluation run --dataset {folder}`."
    )
    return gr.File(archive, visible=True), note
