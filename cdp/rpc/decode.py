"""A server interceptor that turns undecodable request bytes into INVALID_ARGUMENT.

gRPC Python answers a request its deserializer cannot parse with UNKNOWN or INTERNAL; bad
input must get INVALID_ARGUMENT naming what was wrong. Here the deserializer of every
method is wrapped: a parse failure yields an :class:`Undecodable` value, and the method's
behaviour is wrapped to refuse it before the handler runs (a unary request) or when the
stream reaches it (a streamed request, as :class:`cdp.errors.InvalidInputError`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from cdp.errors import InvalidInputError


class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    def __init__(self, method: str, reason: str) -> None:
        self.error = InvalidInputError(
            "request", f"is not a valid {method.rpartition('/')[2]} message: {reason[:200]}"
        )


def _deserializer(method: str, parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(method, str(exc))

    return deserialize


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error
        yield request


def _streamed(behavior: Any) -> Any:
    """A streamed-request behaviour that reads its requests through :func:`_checked`."""
    if inspect.isasyncgenfunction(behavior):

        async def responses(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for response in behavior(_checked(requests), context):
                yield response

        return responses

    async def response(requests: AsyncIterator[Any], context: Any) -> Any:
        return await behavior(_checked(requests), context)

    return response


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with a checking deserializer and a behaviour that refuses bad requests."""
    if handler.request_deserializer is None:
        return handler
    if handler.request_streaming:
        name = "stream_stream" if handler.response_streaming else "stream_unary"
        behavior: Any = getattr(handler, name)
        wrapped: Any = _streamed(behavior)
    elif handler.response_streaming:
        name, behavior = "unary_stream", getattr(handler, "unary_stream")  # noqa: B009

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))
            async for response in behavior(request, context):
                yield response

        wrapped = unary_stream
    else:
        name, behavior = "unary_unary", getattr(handler, "unary_unary")  # noqa: B009

        async def unary_unary(request: Any, context: Any) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))
            return await behavior(request, context)

        wrapped = unary_unary
    deserializer = _deserializer(method, handler.request_deserializer)
    replace: Any = getattr(handler, "_replace")  # noqa: B009 - grpc's handlers are namedtuples
    return replace(request_deserializer=deserializer, **{name: wrapped})  # type: ignore[no-any-return]


class DecodeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Undecodable requests end with INVALID_ARGUMENT naming the message type."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The next handler, wrapped (see the module docstring)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _wrap(handler, handler_call_details.method)
