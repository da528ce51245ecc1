from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_KIND_UNSPECIFIED: _ClassVar[RecordKind]
    RECORD_KIND_WRITE: _ClassVar[RecordKind]
    RECORD_KIND_BOOKMARK: _ClassVar[RecordKind]
    RECORD_KIND_APP_CONSISTENT: _ClassVar[RecordKind]
    RECORD_KIND_CONSISTENCY_MARKER: _ClassVar[RecordKind]
    RECORD_KIND_RESYNC_START: _ClassVar[RecordKind]
    RECORD_KIND_RESYNC_END: _ClassVar[RecordKind]

class LifecycleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STATE_UNSPECIFIED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_PROTECTING: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_TEST_RUNNING: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_FAILING_OVER: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_FAILED_OVER_AWAITING_COMMIT: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_FAILED_OVER_COMMITTED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_REVERSE_PROTECTING: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_FAILING_BACK: _ClassVar[LifecycleState]

class GroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_STATE_UNSPECIFIED: _ClassVar[GroupState]
    GROUP_STATE_REPLICATING: _ClassVar[GroupState]
    GROUP_STATE_DISCONNECTED: _ClassVar[GroupState]
    GROUP_STATE_RESYNC_REQUIRED: _ClassVar[GroupState]
    GROUP_STATE_ERROR: _ClassVar[GroupState]
    GROUP_STATE_RESYNCING: _ClassVar[GroupState]

class PointKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POINT_KIND_UNSPECIFIED: _ClassVar[PointKind]
    POINT_KIND_CRASH_CONSISTENT: _ClassVar[PointKind]
    POINT_KIND_CHECKPOINT: _ClassVar[PointKind]
    POINT_KIND_BOOKMARK: _ClassVar[PointKind]
    POINT_KIND_APP_CONSISTENT: _ClassVar[PointKind]
    POINT_KIND_CONSISTENCY: _ClassVar[PointKind]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_CLEAN: _ClassVar[Verdict]
    VERDICT_SUSPECT: _ClassVar[Verdict]
    VERDICT_UNKNOWN: _ClassVar[Verdict]

class FailoverStepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILOVER_STEP_STATE_UNSPECIFIED: _ClassVar[FailoverStepState]
    FAILOVER_STEP_STATE_PENDING: _ClassVar[FailoverStepState]
    FAILOVER_STEP_STATE_RUNNING: _ClassVar[FailoverStepState]
    FAILOVER_STEP_STATE_OK: _ClassVar[FailoverStepState]
    FAILOVER_STEP_STATE_FAILED: _ClassVar[FailoverStepState]
RECORD_KIND_UNSPECIFIED: RecordKind
RECORD_KIND_WRITE: RecordKind
RECORD_KIND_BOOKMARK: RecordKind
RECORD_KIND_APP_CONSISTENT: RecordKind
RECORD_KIND_CONSISTENCY_MARKER: RecordKind
RECORD_KIND_RESYNC_START: RecordKind
RECORD_KIND_RESYNC_END: RecordKind
LIFECYCLE_STATE_UNSPECIFIED: LifecycleState
LIFECYCLE_STATE_PROTECTING: LifecycleState
LIFECYCLE_STATE_TEST_RUNNING: LifecycleState
LIFECYCLE_STATE_FAILING_OVER: LifecycleState
LIFECYCLE_STATE_FAILED_OVER_AWAITING_COMMIT: LifecycleState
LIFECYCLE_STATE_FAILED_OVER_COMMITTED: LifecycleState
LIFECYCLE_STATE_REVERSE_PROTECTING: LifecycleState
LIFECYCLE_STATE_FAILING_BACK: LifecycleState
GROUP_STATE_UNSPECIFIED: GroupState
GROUP_STATE_REPLICATING: GroupState
GROUP_STATE_DISCONNECTED: GroupState
GROUP_STATE_RESYNC_REQUIRED: GroupState
GROUP_STATE_ERROR: GroupState
GROUP_STATE_RESYNCING: GroupState
POINT_KIND_UNSPECIFIED: PointKind
POINT_KIND_CRASH_CONSISTENT: PointKind
POINT_KIND_CHECKPOINT: PointKind
POINT_KIND_BOOKMARK: PointKind
POINT_KIND_APP_CONSISTENT: PointKind
POINT_KIND_CONSISTENCY: PointKind
VERDICT_UNSPECIFIED: Verdict
VERDICT_CLEAN: Verdict
VERDICT_SUSPECT: Verdict
VERDICT_UNKNOWN: Verdict
FAILOVER_STEP_STATE_UNSPECIFIED: FailoverStepState
FAILOVER_STEP_STATE_PENDING: FailoverStepState
FAILOVER_STEP_STATE_RUNNING: FailoverStepState
FAILOVER_STEP_STATE_OK: FailoverStepState
FAILOVER_STEP_STATE_FAILED: FailoverStepState

class DiskSpec(_message.Message):
    __slots__ = ("disk_id", "capacity_bytes")
    DISK_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    disk_id: str
    capacity_bytes: int
    def __init__(self, disk_id: _Optional[str] = ..., capacity_bytes: _Optional[int] = ...) -> None: ...

class VmSpec(_message.Message):
    __slots__ = ("vm_id", "disks")
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    vm_id: str
    disks: _containers.RepeatedCompositeFieldContainer[DiskSpec]
    def __init__(self, vm_id: _Optional[str] = ..., disks: _Optional[_Iterable[_Union[DiskSpec, _Mapping]]] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("protocol_version", "source_id", "group_id", "vms", "oldest_held_seq", "next_seq", "member_id", "epoch")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_HELD_SEQ_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    source_id: str
    group_id: str
    vms: _containers.RepeatedCompositeFieldContainer[VmSpec]
    oldest_held_seq: int
    next_seq: int
    member_id: str
    epoch: int
    def __init__(self, protocol_version: _Optional[int] = ..., source_id: _Optional[str] = ..., group_id: _Optional[str] = ..., vms: _Optional[_Iterable[_Union[VmSpec, _Mapping]]] = ..., oldest_held_seq: _Optional[int] = ..., next_seq: _Optional[int] = ..., member_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "durable_seq", "durable_source_time_unix_ns", "resync_required", "max_batch_payload_bytes", "max_batch_records", "window_bytes", "resync_reason", "max_disks_per_group", "max_groups", "heartbeat_interval_seconds")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_RECORDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESYNC_REASON_FIELD_NUMBER: _ClassVar[int]
    MAX_DISKS_PER_GROUP_FIELD_NUMBER: _ClassVar[int]
    MAX_GROUPS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    durable_seq: int
    durable_source_time_unix_ns: int
    resync_required: bool
    max_batch_payload_bytes: int
    max_batch_records: int
    window_bytes: int
    resync_reason: str
    max_disks_per_group: int
    max_groups: int
    heartbeat_interval_seconds: float
    def __init__(self, session_id: _Optional[str] = ..., durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., resync_required: _Optional[bool] = ..., max_batch_payload_bytes: _Optional[int] = ..., max_batch_records: _Optional[int] = ..., window_bytes: _Optional[int] = ..., resync_reason: _Optional[str] = ..., max_disks_per_group: _Optional[int] = ..., max_groups: _Optional[int] = ..., heartbeat_interval_seconds: _Optional[float] = ...) -> None: ...

class WriteRecord(_message.Message):
    __slots__ = ("seq", "disk_index", "offset_bytes", "length_bytes", "compressed_length_bytes", "source_time_unix_ns", "xxh3_64", "kind")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DISK_INDEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    XXH3_64_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    seq: int
    disk_index: int
    offset_bytes: int
    length_bytes: int
    compressed_length_bytes: int
    source_time_unix_ns: int
    xxh3_64: int
    kind: RecordKind
    def __init__(self, seq: _Optional[int] = ..., disk_index: _Optional[int] = ..., offset_bytes: _Optional[int] = ..., length_bytes: _Optional[int] = ..., compressed_length_bytes: _Optional[int] = ..., source_time_unix_ns: _Optional[int] = ..., xxh3_64: _Optional[int] = ..., kind: _Optional[_Union[RecordKind, str]] = ...) -> None: ...

class StreamJournalRequest(_message.Message):
    __slots__ = ("session_id", "records", "payload", "next_seq", "seal_request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SEAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    records: _containers.RepeatedCompositeFieldContainer[WriteRecord]
    payload: bytes
    next_seq: int
    seal_request_id: str
    def __init__(self, session_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[WriteRecord, _Mapping]]] = ..., payload: _Optional[bytes] = ..., next_seq: _Optional[int] = ..., seal_request_id: _Optional[str] = ...) -> None: ...

class StreamJournalResponse(_message.Message):
    __slots__ = ("durable_seq", "durable_source_time_unix_ns", "window_bytes", "seal_request_id")
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    SEAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    durable_seq: int
    durable_source_time_unix_ns: int
    window_bytes: int
    seal_request_id: str
    def __init__(self, durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., window_bytes: _Optional[int] = ..., seal_request_id: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupStatus]
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupStatus, _Mapping]]] = ...) -> None: ...

class GroupStatus(_message.Message):
    __slots__ = ("group_id", "durable_seq", "durable_source_time_unix_ns", "applied_seq", "lag_seconds", "journal_bytes", "received_bytes", "state", "source_id", "vms", "member_id", "resync_total_bytes", "resync_received_bytes", "resync_eta_seconds", "rpo_seconds", "source_clock_skew_seconds", "lifecycle", "epoch", "lifecycle_changed_unix_ns", "lifecycle_note", "source_connected", "source_identity", "resync_stalled_reason", "error", "standing_suspicions", "suspicion_onset_unix_ns", "last_clean_seq", "last_clean_time_unix_ns", "intake_refused_by", "intake_refused_reason", "clock_jump_seconds", "retention_lock_seconds", "detector_phase", "detector_training_until_unix_ns", "detector_watching_from_seq", "lifecycle_failed_back_unix_ns")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    RESYNC_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESYNC_RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESYNC_ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RPO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CLOCK_SKEW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_CHANGED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_NOTE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    RESYNC_STALLED_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STANDING_SUSPICIONS_FIELD_NUMBER: _ClassVar[int]
    SUSPICION_ONSET_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_CLEAN_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_CLEAN_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    INTAKE_REFUSED_BY_FIELD_NUMBER: _ClassVar[int]
    INTAKE_REFUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    CLOCK_JUMP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_LOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_PHASE_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_TRAINING_UNTIL_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_WATCHING_FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FAILED_BACK_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    durable_seq: int
    durable_source_time_unix_ns: int
    applied_seq: int
    lag_seconds: float
    journal_bytes: int
    received_bytes: int
    state: GroupState
    source_id: str
    vms: _containers.RepeatedCompositeFieldContainer[VmSpec]
    member_id: str
    resync_total_bytes: int
    resync_received_bytes: int
    resync_eta_seconds: float
    rpo_seconds: float
    source_clock_skew_seconds: float
    lifecycle: LifecycleState
    epoch: int
    lifecycle_changed_unix_ns: int
    lifecycle_note: str
    source_connected: bool
    source_identity: str
    resync_stalled_reason: str
    error: str
    standing_suspicions: int
    suspicion_onset_unix_ns: int
    last_clean_seq: int
    last_clean_time_unix_ns: int
    intake_refused_by: str
    intake_refused_reason: str
    clock_jump_seconds: float
    retention_lock_seconds: float
    detector_phase: str
    detector_training_until_unix_ns: int
    detector_watching_from_seq: int
    lifecycle_failed_back_unix_ns: int
    def __init__(self, group_id: _Optional[str] = ..., durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., applied_seq: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., journal_bytes: _Optional[int] = ..., received_bytes: _Optional[int] = ..., state: _Optional[_Union[GroupState, str]] = ..., source_id: _Optional[str] = ..., vms: _Optional[_Iterable[_Union[VmSpec, _Mapping]]] = ..., member_id: _Optional[str] = ..., resync_total_bytes: _Optional[int] = ..., resync_received_bytes: _Optional[int] = ..., resync_eta_seconds: _Optional[float] = ..., rpo_seconds: _Optional[float] = ..., source_clock_skew_seconds: _Optional[float] = ..., lifecycle: _Optional[_Union[LifecycleState, str]] = ..., epoch: _Optional[int] = ..., lifecycle_changed_unix_ns: _Optional[int] = ..., lifecycle_note: _Optional[str] = ..., source_connected: _Optional[bool] = ..., source_identity: _Optional[str] = ..., resync_stalled_reason: _Optional[str] = ..., error: _Optional[str] = ..., standing_suspicions: _Optional[int] = ..., suspicion_onset_unix_ns: _Optional[int] = ..., last_clean_seq: _Optional[int] = ..., last_clean_time_unix_ns: _Optional[int] = ..., intake_refused_by: _Optional[str] = ..., intake_refused_reason: _Optional[str] = ..., clock_jump_seconds: _Optional[float] = ..., retention_lock_seconds: _Optional[float] = ..., detector_phase: _Optional[str] = ..., detector_training_until_unix_ns: _Optional[int] = ..., detector_watching_from_seq: _Optional[int] = ..., lifecycle_failed_back_unix_ns: _Optional[int] = ...) -> None: ...

class SetLifecycleRequest(_message.Message):
    __slots__ = ("group_id", "state", "fence", "unfence", "note")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    UNFENCE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    state: LifecycleState
    fence: bool
    unfence: bool
    note: str
    def __init__(self, group_id: _Optional[str] = ..., state: _Optional[_Union[LifecycleState, str]] = ..., fence: _Optional[bool] = ..., unfence: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class SetLifecycleResponse(_message.Message):
    __slots__ = ("state", "epoch", "changed_unix_ns")
    STATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHANGED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    state: LifecycleState
    epoch: int
    changed_unix_ns: int
    def __init__(self, state: _Optional[_Union[LifecycleState, str]] = ..., epoch: _Optional[int] = ..., changed_unix_ns: _Optional[int] = ...) -> None: ...

class RestorePoint(_message.Message):
    __slots__ = ("seq", "source_time_unix_ns", "kind", "label", "verdict")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    source_time_unix_ns: int
    kind: PointKind
    label: str
    verdict: Verdict
    def __init__(self, seq: _Optional[int] = ..., source_time_unix_ns: _Optional[int] = ..., kind: _Optional[_Union[PointKind, str]] = ..., label: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ...) -> None: ...

class ListRestorePointsRequest(_message.Message):
    __slots__ = ("group_id", "start_time_unix_ns", "end_time_unix_ns", "page_size", "page_token", "labelled_only")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LABELLED_ONLY_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    start_time_unix_ns: int
    end_time_unix_ns: int
    page_size: int
    page_token: str
    labelled_only: bool
    def __init__(self, group_id: _Optional[str] = ..., start_time_unix_ns: _Optional[int] = ..., end_time_unix_ns: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., labelled_only: _Optional[bool] = ...) -> None: ...

class ListRestorePointsResponse(_message.Message):
    __slots__ = ("points", "next_page_token")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[RestorePoint]
    next_page_token: str
    def __init__(self, points: _Optional[_Iterable[_Union[RestorePoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateBookmarkRequest(_message.Message):
    __slots__ = ("group_id", "name")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    name: str
    def __init__(self, group_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateBookmarkResponse(_message.Message):
    __slots__ = ("point",)
    POINT_FIELD_NUMBER: _ClassVar[int]
    point: RestorePoint
    def __init__(self, point: _Optional[_Union[RestorePoint, _Mapping]] = ...) -> None: ...

class CreatePlanBookmarkRequest(_message.Message):
    __slots__ = ("group_ids", "name")
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    name: str
    def __init__(self, group_ids: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ...) -> None: ...

class GroupBookmark(_message.Message):
    __slots__ = ("group_id", "point")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    point: RestorePoint
    def __init__(self, group_id: _Optional[str] = ..., point: _Optional[_Union[RestorePoint, _Mapping]] = ...) -> None: ...

class CreatePlanBookmarkResponse(_message.Message):
    __slots__ = ("groups", "taken_unix_ns")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TAKEN_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupBookmark]
    taken_unix_ns: int
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupBookmark, _Mapping]]] = ..., taken_unix_ns: _Optional[int] = ...) -> None: ...

class GetTimelineRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class TimelineSpan(_message.Message):
    __slots__ = ("start_seq", "end_seq", "start_time_unix_ns", "end_time_unix_ns", "restorable", "cause", "points")
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    END_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    RESTORABLE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    start_seq: int
    end_seq: int
    start_time_unix_ns: int
    end_time_unix_ns: int
    restorable: bool
    cause: str
    points: int
    def __init__(self, start_seq: _Optional[int] = ..., end_seq: _Optional[int] = ..., start_time_unix_ns: _Optional[int] = ..., end_time_unix_ns: _Optional[int] = ..., restorable: _Optional[bool] = ..., cause: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class GetTimelineResponse(_message.Message):
    __slots__ = ("spans", "history_window_seconds", "available_history_seconds", "history_health", "history_message", "journal_bytes", "journal_limit_bytes", "suspect_bands")
    SPANS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_HISTORY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_HEALTH_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_BANDS_FIELD_NUMBER: _ClassVar[int]
    spans: _containers.RepeatedCompositeFieldContainer[TimelineSpan]
    history_window_seconds: float
    available_history_seconds: float
    history_health: str
    history_message: str
    journal_bytes: int
    journal_limit_bytes: int
    suspect_bands: _containers.RepeatedCompositeFieldContainer[SuspectBand]
    def __init__(self, spans: _Optional[_Iterable[_Union[TimelineSpan, _Mapping]]] = ..., history_window_seconds: _Optional[float] = ..., available_history_seconds: _Optional[float] = ..., history_health: _Optional[str] = ..., history_message: _Optional[str] = ..., journal_bytes: _Optional[int] = ..., journal_limit_bytes: _Optional[int] = ..., suspect_bands: _Optional[_Iterable[_Union[SuspectBand, _Mapping]]] = ...) -> None: ...

class SuspectBand(_message.Message):
    __slots__ = ("suspicion_id", "member_id", "start_seq", "end_seq", "start_time_unix_ns", "end_time_unix_ns", "open", "signal")
    SUSPICION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    END_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    suspicion_id: str
    member_id: str
    start_seq: int
    end_seq: int
    start_time_unix_ns: int
    end_time_unix_ns: int
    open: bool
    signal: str
    def __init__(self, suspicion_id: _Optional[str] = ..., member_id: _Optional[str] = ..., start_seq: _Optional[int] = ..., end_seq: _Optional[int] = ..., start_time_unix_ns: _Optional[int] = ..., end_time_unix_ns: _Optional[int] = ..., open: _Optional[bool] = ..., signal: _Optional[str] = ...) -> None: ...

class Suspicion(_message.Message):
    __slots__ = ("suspicion_id", "member_id", "start_seq", "start_time_unix_ns", "end_seq", "end_time_unix_ns", "disks", "signal", "raised_by", "raised_unix_ns", "dismissed", "dismissed_by", "dismissed_unix_ns", "reason")
    SUSPICION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_SEQ_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    RAISED_BY_FIELD_NUMBER: _ClassVar[int]
    RAISED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_BY_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    suspicion_id: str
    member_id: str
    start_seq: int
    start_time_unix_ns: int
    end_seq: int
    end_time_unix_ns: int
    disks: _containers.RepeatedScalarFieldContainer[int]
    signal: str
    raised_by: str
    raised_unix_ns: int
    dismissed: bool
    dismissed_by: str
    dismissed_unix_ns: int
    reason: str
    def __init__(self, suspicion_id: _Optional[str] = ..., member_id: _Optional[str] = ..., start_seq: _Optional[int] = ..., start_time_unix_ns: _Optional[int] = ..., end_seq: _Optional[int] = ..., end_time_unix_ns: _Optional[int] = ..., disks: _Optional[_Iterable[int]] = ..., signal: _Optional[str] = ..., raised_by: _Optional[str] = ..., raised_unix_ns: _Optional[int] = ..., dismissed: _Optional[bool] = ..., dismissed_by: _Optional[str] = ..., dismissed_unix_ns: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListSuspicionsRequest(_message.Message):
    __slots__ = ("group_id", "standing_only")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    STANDING_ONLY_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    standing_only: bool
    def __init__(self, group_id: _Optional[str] = ..., standing_only: _Optional[bool] = ...) -> None: ...

class ListSuspicionsResponse(_message.Message):
    __slots__ = ("suspicions",)
    SUSPICIONS_FIELD_NUMBER: _ClassVar[int]
    suspicions: _containers.RepeatedCompositeFieldContainer[Suspicion]
    def __init__(self, suspicions: _Optional[_Iterable[_Union[Suspicion, _Mapping]]] = ...) -> None: ...

class MarkCompromisedRequest(_message.Message):
    __slots__ = ("group_id", "start_time_unix_ns", "end_time_unix_ns", "start_seq", "end_seq", "reason")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    END_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    start_time_unix_ns: int
    end_time_unix_ns: int
    start_seq: int
    end_seq: int
    reason: str
    def __init__(self, group_id: _Optional[str] = ..., start_time_unix_ns: _Optional[int] = ..., end_time_unix_ns: _Optional[int] = ..., start_seq: _Optional[int] = ..., end_seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class MarkCompromisedResponse(_message.Message):
    __slots__ = ("suspicions",)
    SUSPICIONS_FIELD_NUMBER: _ClassVar[int]
    suspicions: _containers.RepeatedCompositeFieldContainer[Suspicion]
    def __init__(self, suspicions: _Optional[_Iterable[_Union[Suspicion, _Mapping]]] = ...) -> None: ...

class DismissSuspicionRequest(_message.Message):
    __slots__ = ("group_id", "suspicion_id", "member_id", "reason")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    SUSPICION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    suspicion_id: str
    member_id: str
    reason: str
    def __init__(self, group_id: _Optional[str] = ..., suspicion_id: _Optional[str] = ..., member_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DismissSuspicionResponse(_message.Message):
    __slots__ = ("suspicion",)
    SUSPICION_FIELD_NUMBER: _ClassVar[int]
    suspicion: Suspicion
    def __init__(self, suspicion: _Optional[_Union[Suspicion, _Mapping]] = ...) -> None: ...

class ReadImageRequest(_message.Message):
    __slots__ = ("group_id", "vm_id", "disk", "at", "offset_bytes", "length_bytes", "dry_run", "journal_tail_only")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    VM_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_TAIL_ONLY_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    vm_id: str
    disk: int
    at: str
    offset_bytes: int
    length_bytes: int
    dry_run: bool
    journal_tail_only: bool
    def __init__(self, group_id: _Optional[str] = ..., vm_id: _Optional[str] = ..., disk: _Optional[int] = ..., at: _Optional[str] = ..., offset_bytes: _Optional[int] = ..., length_bytes: _Optional[int] = ..., dry_run: _Optional[bool] = ..., journal_tail_only: _Optional[bool] = ...) -> None: ...

class HoldBaseRequest(_message.Message):
    __slots__ = ("group_id", "holder", "at", "release")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    holder: str
    at: str
    release: bool
    def __init__(self, group_id: _Optional[str] = ..., holder: _Optional[str] = ..., at: _Optional[str] = ..., release: _Optional[bool] = ...) -> None: ...

class HoldBaseResponse(_message.Message):
    __slots__ = ("point", "released")
    POINT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    point: RestorePoint
    released: bool
    def __init__(self, point: _Optional[_Union[RestorePoint, _Mapping]] = ..., released: _Optional[bool] = ...) -> None: ...

class ImagePlan(_message.Message):
    __slots__ = ("point", "base_seq", "records", "record_bytes", "capacity_bytes")
    POINT_FIELD_NUMBER: _ClassVar[int]
    BASE_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    RECORD_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    point: RestorePoint
    base_seq: int
    records: int
    record_bytes: int
    capacity_bytes: int
    def __init__(self, point: _Optional[_Union[RestorePoint, _Mapping]] = ..., base_seq: _Optional[int] = ..., records: _Optional[int] = ..., record_bytes: _Optional[int] = ..., capacity_bytes: _Optional[int] = ...) -> None: ...

class ReadImageResponse(_message.Message):
    __slots__ = ("plan", "offset_bytes", "data")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    plan: ImagePlan
    offset_bytes: int
    data: bytes
    def __init__(self, plan: _Optional[_Union[ImagePlan, _Mapping]] = ..., offset_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CompareRegionsRequest(_message.Message):
    __slots__ = ("session_id", "disk_index", "region_bytes", "offsets", "xxh3_64")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGION_BYTES_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    XXH3_64_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    disk_index: int
    region_bytes: int
    offsets: _containers.RepeatedScalarFieldContainer[int]
    xxh3_64: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[str] = ..., disk_index: _Optional[int] = ..., region_bytes: _Optional[int] = ..., offsets: _Optional[_Iterable[int]] = ..., xxh3_64: _Optional[_Iterable[int]] = ...) -> None: ...

class CompareRegionsResponse(_message.Message):
    __slots__ = ("differing_offsets",)
    DIFFERING_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    differing_offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, differing_offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("time_unix_ns", "identity", "action", "object", "outcome")
    TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    time_unix_ns: int
    identity: str
    action: str
    object: str
    outcome: str
    def __init__(self, time_unix_ns: _Optional[int] = ..., identity: _Optional[str] = ..., action: _Optional[str] = ..., object: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class RecordAuditRequest(_message.Message):
    __slots__ = ("action", "object", "outcome")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    action: str
    object: str
    outcome: str
    def __init__(self, action: _Optional[str] = ..., object: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class RecordAuditResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: AuditEntry
    def __init__(self, entry: _Optional[_Union[AuditEntry, _Mapping]] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("since_unix_ns", "limit")
    SINCE_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    since_unix_ns: int
    limit: int
    def __init__(self, since_unix_ns: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class FailoverStep(_message.Message):
    __slots__ = ("step_id", "kind", "phase", "description", "state", "seconds", "error")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: str
    phase: int
    description: str
    state: FailoverStepState
    seconds: float
    error: str
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[str] = ..., phase: _Optional[int] = ..., description: _Optional[str] = ..., state: _Optional[_Union[FailoverStepState, str]] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class ReportFailoverProgressRequest(_message.Message):
    __slots__ = ("plan", "group_ids", "kind", "status", "phase", "phases", "started_unix_ns", "started_by", "steps", "finished")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    STARTED_BY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    plan: str
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    kind: str
    status: str
    phase: int
    phases: int
    started_unix_ns: int
    started_by: str
    steps: _containers.RepeatedCompositeFieldContainer[FailoverStep]
    finished: bool
    def __init__(self, plan: _Optional[str] = ..., group_ids: _Optional[_Iterable[str]] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., phase: _Optional[int] = ..., phases: _Optional[int] = ..., started_unix_ns: _Optional[int] = ..., started_by: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[FailoverStep, _Mapping]]] = ..., finished: _Optional[bool] = ...) -> None: ...

class ReportFailoverProgressResponse(_message.Message):
    __slots__ = ("received_unix_ns", "reported_by")
    RECEIVED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_FIELD_NUMBER: _ClassVar[int]
    received_unix_ns: int
    reported_by: str
    def __init__(self, received_unix_ns: _Optional[int] = ..., reported_by: _Optional[str] = ...) -> None: ...

class SealGroupRequest(_message.Message):
    __slots__ = ("group_id", "timeout_seconds", "release")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    timeout_seconds: float
    release: bool
    def __init__(self, group_id: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., release: _Optional[bool] = ...) -> None: ...

class MemberSeal(_message.Message):
    __slots__ = ("member_id", "source_id", "sealed_seq", "sealed_unix_ns")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_SEQ_FIELD_NUMBER: _ClassVar[int]
    SEALED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    source_id: str
    sealed_seq: int
    sealed_unix_ns: int
    def __init__(self, member_id: _Optional[str] = ..., source_id: _Optional[str] = ..., sealed_seq: _Optional[int] = ..., sealed_unix_ns: _Optional[int] = ...) -> None: ...

class SealGroupResponse(_message.Message):
    __slots__ = ("members", "released")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberSeal]
    released: bool
    def __init__(self, members: _Optional[_Iterable[_Union[MemberSeal, _Mapping]]] = ..., released: _Optional[bool] = ...) -> None: ...
