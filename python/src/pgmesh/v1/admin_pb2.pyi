from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pgmesh.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DEAD_LETTER_REASON_MAX_ATTEMPTS: DeadLetterReason
DEAD_LETTER_REASON_REJECTED: DeadLetterReason
DEAD_LETTER_REASON_UNSPECIFIED: DeadLetterReason
DESCRIPTOR: _descriptor.FileDescriptor

class AuditRecord(_message.Message):
    __slots__ = ["credential", "detail", "id", "method", "principal", "resource", "result", "time"]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    credential: str
    detail: str
    id: str
    method: str
    principal: str
    resource: str
    result: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., method: _Optional[str] = ..., resource: _Optional[str] = ..., result: _Optional[str] = ..., detail: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class ConsumerInfo(_message.Message):
    __slots__ = ["connect_time", "in_flight", "max_outstanding_messages", "name"]
    CONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTSTANDING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    connect_time: _timestamp_pb2.Timestamp
    in_flight: int
    max_outstanding_messages: int
    name: str
    def __init__(self, name: _Optional[str] = ..., connect_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., in_flight: _Optional[int] = ..., max_outstanding_messages: _Optional[int] = ...) -> None: ...

class CreatePrincipalRequest(_message.Message):
    __slots__ = ["principal"]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class CreatePrincipalResponse(_message.Message):
    __slots__ = ["principal"]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ["ack_deadline", "acked_retention", "dead_lettering", "filter", "max_delivery_attempts", "name", "ordering", "retry_policy", "start", "topic"]
    ACKED_RETENTION_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERING_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORDERING_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ack_deadline: _duration_pb2.Duration
    acked_retention: _duration_pb2.Duration
    dead_lettering: bool
    filter: str
    max_delivery_attempts: int
    name: str
    ordering: bool
    retry_policy: RetryPolicy
    start: StartPosition
    topic: str
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., ack_deadline: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., dead_lettering: bool = ..., ordering: bool = ..., filter: _Optional[str] = ..., acked_retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., start: _Optional[_Union[StartPosition, _Mapping]] = ...) -> None: ...

class CreateSubscriptionResponse(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ["description", "principal", "ttl"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    description: str
    principal: str
    ttl: _duration_pb2.Duration
    def __init__(self, principal: _Optional[str] = ..., ttl: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ["info", "token"]
    INFO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    token: str
    def __init__(self, token: _Optional[str] = ..., info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class CreateTopicRequest(_message.Message):
    __slots__ = ["name", "retention"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    retention: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateTopicResponse(_message.Message):
    __slots__ = ["topic"]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ["attempts", "dead_letter_time", "event", "first_failure_time", "id", "last_error", "reason", "subscription"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FAILURE_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    dead_letter_time: _timestamp_pb2.Timestamp
    event: _event_pb2.Event
    first_failure_time: _timestamp_pb2.Timestamp
    id: str
    last_error: str
    reason: DeadLetterReason
    subscription: str
    def __init__(self, id: _Optional[str] = ..., subscription: _Optional[str] = ..., event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., attempts: _Optional[int] = ..., reason: _Optional[_Union[DeadLetterReason, str]] = ..., last_error: _Optional[str] = ..., first_failure_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., dead_letter_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeadLetterFilter(_message.Message):
    __slots__ = ["after", "before", "event_type", "reason", "subscription"]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    after: _timestamp_pb2.Timestamp
    before: _timestamp_pb2.Timestamp
    event_type: str
    reason: DeadLetterReason
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., reason: _Optional[_Union[DeadLetterReason, str]] = ..., after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., event_type: _Optional[str] = ...) -> None: ...

class DeletePrincipalRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeletePrincipalResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class DeleteSubscriptionRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSubscriptionResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class DeleteTopicRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTopicResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class GetSubscriptionStatsRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSubscriptionStatsResponse(_message.Message):
    __slots__ = ["backlog", "cursor_lag", "cursor_lag_age", "cursor_position", "dead_letters", "in_flight", "oldest_unacked_age", "parked_keys"]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    CURSOR_LAG_AGE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_LAG_FIELD_NUMBER: _ClassVar[int]
    CURSOR_POSITION_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_UNACKED_AGE_FIELD_NUMBER: _ClassVar[int]
    PARKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    backlog: int
    cursor_lag: int
    cursor_lag_age: _duration_pb2.Duration
    cursor_position: int
    dead_letters: int
    in_flight: int
    oldest_unacked_age: _duration_pb2.Duration
    parked_keys: int
    def __init__(self, backlog: _Optional[int] = ..., in_flight: _Optional[int] = ..., oldest_unacked_age: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., dead_letters: _Optional[int] = ..., parked_keys: _Optional[int] = ..., cursor_lag: _Optional[int] = ..., cursor_lag_age: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., cursor_position: _Optional[int] = ...) -> None: ...

class GetTopicRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTopicResponse(_message.Message):
    __slots__ = ["topic"]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class GetTopicSchemaRequest(_message.Message):
    __slots__ = ["topic"]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class GetTopicSchemaResponse(_message.Message):
    __slots__ = ["schema"]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: TopicSchema
    def __init__(self, schema: _Optional[_Union[TopicSchema, _Mapping]] = ...) -> None: ...

class ListAuditLogRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "principal"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    principal: str
    def __init__(self, principal: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditLogResponse(_message.Message):
    __slots__ = ["next_page_token", "records"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListConsumersRequest(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ...) -> None: ...

class ListConsumersResponse(_message.Message):
    __slots__ = ["consumers"]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    consumers: _containers.RepeatedCompositeFieldContainer[ConsumerInfo]
    def __init__(self, consumers: _Optional[_Iterable[_Union[ConsumerInfo, _Mapping]]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ["filter", "page_size", "page_token"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ["dead_letters", "next_page_token"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListParkedKeysRequest(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ...) -> None: ...

class ListParkedKeysResponse(_message.Message):
    __slots__ = ["parked_keys"]
    PARKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    parked_keys: _containers.RepeatedCompositeFieldContainer[ParkedKey]
    def __init__(self, parked_keys: _Optional[_Iterable[_Union[ParkedKey, _Mapping]]] = ...) -> None: ...

class ListPrincipalsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListPrincipalsResponse(_message.Message):
    __slots__ = ["principals"]
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    principals: _containers.RepeatedCompositeFieldContainer[Principal]
    def __init__(self, principals: _Optional[_Iterable[_Union[Principal, _Mapping]]] = ...) -> None: ...

class ListSubscriptionSummariesRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "search"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    search: str
    def __init__(self, search: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscriptionSummariesResponse(_message.Message):
    __slots__ = ["next_page_token", "refresh_time", "subscriptions", "total_size"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    refresh_time: _timestamp_pb2.Timestamp
    subscriptions: _containers.RepeatedCompositeFieldContainer[SubscriptionSummary]
    total_size: int
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[SubscriptionSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., refresh_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "topic"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    topic: str
    def __init__(self, topic: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ["next_page_token", "subscriptions"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ["principal"]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    def __init__(self, principal: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ["tokens"]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class ListTopicEventsRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "start", "topic"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    start: StartPosition
    topic: str
    def __init__(self, topic: _Optional[str] = ..., start: _Optional[_Union[StartPosition, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTopicEventsResponse(_message.Message):
    __slots__ = ["events", "next_page_token"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TopicEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[TopicEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTopicSummariesRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "search"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    search: str
    def __init__(self, search: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTopicSummariesResponse(_message.Message):
    __slots__ = ["next_page_token", "refresh_time", "topics", "total_size"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    refresh_time: _timestamp_pb2.Timestamp
    topics: _containers.RepeatedCompositeFieldContainer[TopicSummary]
    total_size: int
    def __init__(self, topics: _Optional[_Iterable[_Union[TopicSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., refresh_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTopicsRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTopicsResponse(_message.Message):
    __slots__ = ["next_page_token", "topics"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    topics: _containers.RepeatedCompositeFieldContainer[Topic]
    def __init__(self, topics: _Optional[_Iterable[_Union[Topic, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ParkedKey(_message.Message):
    __slots__ = ["dead_letter_id", "ordering_key", "waiting"]
    DEAD_LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDERING_KEY_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    dead_letter_id: str
    ordering_key: str
    waiting: int
    def __init__(self, ordering_key: _Optional[str] = ..., dead_letter_id: _Optional[str] = ..., waiting: _Optional[int] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ["create_time", "grants", "name", "sources"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    grants: _containers.RepeatedScalarFieldContainer[str]
    name: str
    sources: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., grants: _Optional[_Iterable[str]] = ..., sources: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ["filter", "ids"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ["purged"]
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class RedriveDeadLettersRequest(_message.Message):
    __slots__ = ["filter", "ids"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ...) -> None: ...

class RedriveDeadLettersResponse(_message.Message):
    __slots__ = ["redriven"]
    REDRIVEN_FIELD_NUMBER: _ClassVar[int]
    redriven: int
    def __init__(self, redriven: _Optional[int] = ...) -> None: ...

class ReleaseParkedKeysRequest(_message.Message):
    __slots__ = ["ordering_keys", "subscription"]
    ORDERING_KEYS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ordering_keys: _containers.RepeatedScalarFieldContainer[str]
    subscription: str
    def __init__(self, subscription: _Optional[str] = ..., ordering_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class ReleaseParkedKeysResponse(_message.Message):
    __slots__ = ["released"]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: int
    def __init__(self, released: _Optional[int] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ["initial_backoff", "jitter", "max_backoff", "multiplier"]
    INITIAL_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    initial_backoff: _duration_pb2.Duration
    jitter: float
    max_backoff: _duration_pb2.Duration
    multiplier: float
    def __init__(self, initial_backoff: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., multiplier: _Optional[float] = ..., jitter: _Optional[float] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ["token"]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: TokenInfo
    def __init__(self, token: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class SeekSubscriptionRequest(_message.Message):
    __slots__ = ["subscription", "to"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    to: StartPosition
    def __init__(self, subscription: _Optional[str] = ..., to: _Optional[_Union[StartPosition, _Mapping]] = ...) -> None: ...

class SeekSubscriptionResponse(_message.Message):
    __slots__ = ["dropped_deliveries", "position"]
    DROPPED_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    dropped_deliveries: int
    position: int
    def __init__(self, position: _Optional[int] = ..., dropped_deliveries: _Optional[int] = ...) -> None: ...

class SetTopicSchemaRequest(_message.Message):
    __slots__ = ["schema", "topic"]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    schema: TopicSchema
    topic: str
    def __init__(self, topic: _Optional[str] = ..., schema: _Optional[_Union[TopicSchema, _Mapping]] = ...) -> None: ...

class SetTopicSchemaResponse(_message.Message):
    __slots__ = ["schema"]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: TopicSchema
    def __init__(self, schema: _Optional[_Union[TopicSchema, _Mapping]] = ...) -> None: ...

class StartPosition(_message.Message):
    __slots__ = ["earliest", "now", "position", "time"]
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    earliest: _empty_pb2.Empty
    now: _empty_pb2.Empty
    position: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, now: _Optional[_Union[_empty_pb2.Empty, _Mapping]] = ..., earliest: _Optional[_Union[_empty_pb2.Empty, _Mapping]] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ["ack_deadline", "acked_retention", "create_time", "dead_lettering", "filter", "max_delivery_attempts", "name", "ordering", "retry_policy", "topic"]
    ACKED_RETENTION_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERING_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORDERING_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ack_deadline: _duration_pb2.Duration
    acked_retention: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    dead_lettering: bool
    filter: str
    max_delivery_attempts: int
    name: str
    ordering: bool
    retry_policy: RetryPolicy
    topic: str
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., ack_deadline: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., dead_lettering: bool = ..., ordering: bool = ..., filter: _Optional[str] = ..., acked_retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SubscriptionSummary(_message.Message):
    __slots__ = ["acked", "backlog", "cursor_lag", "dead_letters", "delivered", "in_flight", "name", "oldest_unacked_age", "topic"]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    CURSOR_LAG_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OLDEST_UNACKED_AGE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    acked: int
    backlog: int
    cursor_lag: int
    dead_letters: int
    delivered: int
    in_flight: int
    name: str
    oldest_unacked_age: _duration_pb2.Duration
    topic: str
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., backlog: _Optional[int] = ..., in_flight: _Optional[int] = ..., oldest_unacked_age: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., dead_letters: _Optional[int] = ..., cursor_lag: _Optional[int] = ..., delivered: _Optional[int] = ..., acked: _Optional[int] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ["create_time", "description", "expire_time", "id", "principal", "revoke_time"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    description: str
    expire_time: _timestamp_pb2.Timestamp
    id: str
    principal: str
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., principal: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Topic(_message.Message):
    __slots__ = ["create_time", "name", "retention"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    name: str
    retention: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TopicEvent(_message.Message):
    __slots__ = ["event", "position"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    position: int
    def __init__(self, position: _Optional[int] = ..., event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ...) -> None: ...

class TopicSchema(_message.Message):
    __slots__ = ["file_descriptor_set", "message_types", "update_time"]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    file_descriptor_set: bytes
    message_types: _containers.RepeatedScalarFieldContainer[str]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, file_descriptor_set: _Optional[bytes] = ..., message_types: _Optional[_Iterable[str]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TopicSummary(_message.Message):
    __slots__ = ["name", "published", "retention", "subscriptions"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    published: int
    retention: _duration_pb2.Duration
    subscriptions: int
    def __init__(self, name: _Optional[str] = ..., retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., subscriptions: _Optional[int] = ..., published: _Optional[int] = ...) -> None: ...

class UpdatePrincipalRequest(_message.Message):
    __slots__ = ["principal"]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class UpdatePrincipalResponse(_message.Message):
    __slots__ = ["principal"]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class UpdateSubscriptionRequest(_message.Message):
    __slots__ = ["subscription", "update_mask"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSubscriptionResponse(_message.Message):
    __slots__ = ["subscription"]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class UpdateTopicRequest(_message.Message):
    __slots__ = ["name", "retention"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    retention: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateTopicResponse(_message.Message):
    __slots__ = ["topic"]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class DeadLetterReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
