from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pgmesh.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

ACK_STATUS_ACKED: AckStatus
ACK_STATUS_DEAD_LETTERED: AckStatus
ACK_STATUS_EXTENDED: AckStatus
ACK_STATUS_FAILED_PRECONDITION: AckStatus
ACK_STATUS_INVALID_ARGUMENT: AckStatus
ACK_STATUS_NACKED: AckStatus
ACK_STATUS_STALE: AckStatus
ACK_STATUS_UNKNOWN: AckStatus
ACK_STATUS_UNSPECIFIED: AckStatus
DESCRIPTOR: _descriptor.FileDescriptor

class Ack(_message.Message):
    __slots__ = ["ack_ids"]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ack_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AckResult(_message.Message):
    __slots__ = ["ack_id", "message", "status"]
    ACK_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ack_id: str
    message: str
    status: AckStatus
    def __init__(self, ack_id: _Optional[str] = ..., status: _Optional[_Union[AckStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class AckResults(_message.Message):
    __slots__ = ["results"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AckResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AckResult, _Mapping]]] = ...) -> None: ...

class Deliveries(_message.Message):
    __slots__ = ["deliveries"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ["ack_id", "delivery_attempt", "event"]
    ACK_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ack_id: str
    delivery_attempt: int
    event: _event_pb2.Event
    def __init__(self, ack_id: _Optional[str] = ..., delivery_attempt: _Optional[int] = ..., event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ...) -> None: ...

class Extend(_message.Message):
    __slots__ = ["ack_ids", "duration"]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    duration: _duration_pb2.Duration
    def __init__(self, ack_ids: _Optional[_Iterable[str]] = ..., duration: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FlowControl(_message.Message):
    __slots__ = ["max_outstanding_bytes", "max_outstanding_messages"]
    MAX_OUTSTANDING_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    max_outstanding_bytes: int
    max_outstanding_messages: int
    def __init__(self, max_outstanding_messages: _Optional[int] = ..., max_outstanding_bytes: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ["time"]
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ["ack_ids", "delay", "reason"]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    delay: _duration_pb2.Duration
    reason: str
    def __init__(self, ack_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., delay: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Open(_message.Message):
    __slots__ = ["consumer", "max_outstanding_bytes", "max_outstanding_messages", "subscription"]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    max_outstanding_bytes: int
    max_outstanding_messages: int
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., consumer: _Optional[str] = ..., max_outstanding_messages: _Optional[int] = ..., max_outstanding_bytes: _Optional[int] = ...) -> None: ...

class Opened(_message.Message):
    __slots__ = ["ack_deadline", "heartbeat_interval", "max_message_bytes", "max_outstanding_bytes", "max_outstanding_messages", "subscription", "topic"]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ack_deadline: _duration_pb2.Duration
    heartbeat_interval: _duration_pb2.Duration
    max_message_bytes: int
    max_outstanding_bytes: int
    max_outstanding_messages: int
    subscription: str
    topic: str
    def __init__(self, subscription: _Optional[str] = ..., topic: _Optional[str] = ..., max_outstanding_messages: _Optional[int] = ..., ack_deadline: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., max_outstanding_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class Reject(_message.Message):
    __slots__ = ["ack_ids", "reason"]
    ACK_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ack_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, ack_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ["ack", "extend", "flow", "nack", "open", "reject"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    EXTEND_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    ack: Ack
    extend: Extend
    flow: FlowControl
    nack: Nack
    open: Open
    reject: Reject
    def __init__(self, open: _Optional[_Union[Open, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., nack: _Optional[_Union[Nack, _Mapping]] = ..., flow: _Optional[_Union[FlowControl, _Mapping]] = ..., extend: _Optional[_Union[Extend, _Mapping]] = ..., reject: _Optional[_Union[Reject, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ["ack_results", "deliveries", "heartbeat", "opened"]
    ACK_RESULTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    ack_results: AckResults
    deliveries: Deliveries
    heartbeat: Heartbeat
    opened: Opened
    def __init__(self, opened: _Optional[_Union[Opened, _Mapping]] = ..., deliveries: _Optional[_Union[Deliveries, _Mapping]] = ..., ack_results: _Optional[_Union[AckResults, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
