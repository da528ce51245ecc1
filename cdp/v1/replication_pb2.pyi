from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_STATE_UNSPECIFIED: _ClassVar[GroupState]
    GROUP_STATE_REPLICATING: _ClassVar[GroupState]
    GROUP_STATE_DISCONNECTED: _ClassVar[GroupState]
    GROUP_STATE_RESYNC_REQUIRED: _ClassVar[GroupState]
    GROUP_STATE_ERROR: _ClassVar[GroupState]
GROUP_STATE_UNSPECIFIED: GroupState
GROUP_STATE_REPLICATING: GroupState
GROUP_STATE_DISCONNECTED: GroupState
GROUP_STATE_RESYNC_REQUIRED: GroupState
GROUP_STATE_ERROR: GroupState

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
    __slots__ = ("protocol_version", "source_id", "group_id", "vms", "oldest_held_seq", "next_seq")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_HELD_SEQ_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    source_id: str
    group_id: str
    vms: _containers.RepeatedCompositeFieldContainer[VmSpec]
    oldest_held_seq: int
    next_seq: int
    def __init__(self, protocol_version: _Optional[int] = ..., source_id: _Optional[str] = ..., group_id: _Optional[str] = ..., vms: _Optional[_Iterable[_Union[VmSpec, _Mapping]]] = ..., oldest_held_seq: _Optional[int] = ..., next_seq: _Optional[int] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "durable_seq", "durable_source_time_unix_ns", "resync_required", "max_batch_payload_bytes", "max_batch_records", "window_bytes", "resync_reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_RECORDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESYNC_REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    durable_seq: int
    durable_source_time_unix_ns: int
    resync_required: bool
    max_batch_payload_bytes: int
    max_batch_records: int
    window_bytes: int
    resync_reason: str
    def __init__(self, session_id: _Optional[str] = ..., durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., resync_required: _Optional[bool] = ..., max_batch_payload_bytes: _Optional[int] = ..., max_batch_records: _Optional[int] = ..., window_bytes: _Optional[int] = ..., resync_reason: _Optional[str] = ...) -> None: ...

class WriteRecord(_message.Message):
    __slots__ = ("seq", "disk_index", "offset_bytes", "length_bytes", "compressed_length_bytes", "source_time_unix_ns", "xxh3_64")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DISK_INDEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_LENGTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    XXH3_64_FIELD_NUMBER: _ClassVar[int]
    seq: int
    disk_index: int
    offset_bytes: int
    length_bytes: int
    compressed_length_bytes: int
    source_time_unix_ns: int
    xxh3_64: int
    def __init__(self, seq: _Optional[int] = ..., disk_index: _Optional[int] = ..., offset_bytes: _Optional[int] = ..., length_bytes: _Optional[int] = ..., compressed_length_bytes: _Optional[int] = ..., source_time_unix_ns: _Optional[int] = ..., xxh3_64: _Optional[int] = ...) -> None: ...

class StreamJournalRequest(_message.Message):
    __slots__ = ("session_id", "records", "payload")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    records: _containers.RepeatedCompositeFieldContainer[WriteRecord]
    payload: bytes
    def __init__(self, session_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[WriteRecord, _Mapping]]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class StreamJournalResponse(_message.Message):
    __slots__ = ("durable_seq", "durable_source_time_unix_ns", "window_bytes")
    DURABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    DURABLE_SOURCE_TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    durable_seq: int
    durable_source_time_unix_ns: int
    window_bytes: int
    def __init__(self, durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., window_bytes: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("group_id", "durable_seq", "durable_source_time_unix_ns", "applied_seq", "lag_seconds", "journal_bytes", "received_bytes", "state", "source_id", "vms")
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
    def __init__(self, group_id: _Optional[str] = ..., durable_seq: _Optional[int] = ..., durable_source_time_unix_ns: _Optional[int] = ..., applied_seq: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., journal_bytes: _Optional[int] = ..., received_bytes: _Optional[int] = ..., state: _Optional[_Union[GroupState, str]] = ..., source_id: _Optional[str] = ..., vms: _Optional[_Iterable[_Union[VmSpec, _Mapping]]] = ...) -> None: ...
