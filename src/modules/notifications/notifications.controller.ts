import { Body, Controller, Get, HttpCode, MessageEvent, Patch, Post, Query, Req, Sse, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { NEVER, Observable, interval, map, merge, of, takeUntil, timer } from 'rxjs';
import type { Principal } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { Tx, UserRoute } from '../../platform/http/tenant.js';
import {
  MarkAllReadDto, MarkedReadDto, NotificationDto, NotificationPage, NotificationQuery, PreferencesDto, UnreadCountDto, UpdatePreferencesDto,
} from './notification.dto.js';
import { NotificationsService } from './notifications.service.js';
import { NotificationStreamReady } from './notification-stream.js';
import { SessionLiveness } from '../auth/session-liveness.js';
import { Clock } from '../../platform/clock/clock.js';
import { InFlightRequests } from '../../platform/http/graceful-shutdown.js';

@ApiTags('notifications')
@UserRoute()
@Controller('v1/me')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Get('notifications')
  @ApiOperation({ operationId: 'listNotifications', summary: "The signed-in user's notices from every organization, newest first (filters: unread, category, organization, archive)",
    description: 'Only the notices of organizations the user belongs to now, and those addressed to them in person (their role changed, their '
      + 'removal, a sign-in): a notice of an organization they left is no longer listed, counted or marked (404 notification.not_found). '
      + 'The same holds for the unread count, the read marks and the e-mail digest.' })
  @ApiOkResponse({ type: NotificationPage })
  @ApiErrorCodes('auth.user_required', 'pagination.cursor')
  list(@Tx() tx: TenantTx, @Query() q: NotificationQuery): Promise<NotificationPage> {
    return this.notifications.list(tx, q);
  }

  @Get('notifications/unread-count')
  @ApiOperation({ operationId: 'getUnreadNotificationCount', summary: 'How many notices are unread, in all and per category' })
  @ApiOkResponse({ type: UnreadCountDto })
  @ApiErrorCodes('auth.user_required')
  unreadCount(@Tx() tx: TenantTx): Promise<UnreadCountDto> {
    return this.notifications.unreadCount(tx);
  }

  @Post('notifications/read-all')
  @HttpCode(200)
  @ApiOperation({ operationId: 'markAllNotificationsRead', summary: 'Mark every unread notice read (optionally of one category or organization)' })
  @ApiOkResponse({ type: MarkedReadDto })
  @ApiErrorCodes('auth.user_required')
  markAllRead(@Tx() tx: TenantTx, @Body() dto: MarkAllReadDto): Promise<MarkedReadDto> {
    return this.notifications.markAllRead(tx, dto);
  }

  @Post('notifications/:notificationId/read')
  @HttpCode(200)
  @ApiOperation({ operationId: 'markNotificationRead', summary: 'Mark one notice read (idempotent)' })
  @ApiParam({ name: 'notificationId', format: 'uuid', description: 'The notice id' })
  @ApiOkResponse({ type: NotificationDto })
  @ApiErrorCodes('notification.not_found')
  markRead(@Tx() tx: TenantTx, @IdParam('notificationId', 'notification') id: string): Promise<NotificationDto> {
    return this.notifications.markRead(tx, id);
  }

  @Post('notifications/:notificationId/archive')
  @HttpCode(200)
  @ApiOperation({ operationId: 'archiveNotification', summary: 'Move one notice to the archive (it counts as read)' })
  @ApiParam({ name: 'notificationId', format: 'uuid', description: 'The notice id' })
  @ApiOkResponse({ type: NotificationDto })
  @ApiErrorCodes('notification.not_found')
  archive(@Tx() tx: TenantTx, @IdParam('notificationId', 'notification') id: string): Promise<NotificationDto> {
    return this.notifications.archive(tx, id);
  }

  @Get('notification-preferences')
  @ApiOperation({ operationId: 'getNotificationPreferences', summary: 'Which categories reach the signed-in user on which channel, and which e-mails come as an hourly digest' })
  @ApiOkResponse({ type: PreferencesDto })
  @ApiErrorCodes('auth.user_required')
  preferences(@Tx() tx: TenantTx): Promise<PreferencesDto> {
    return this.notifications.preferences(tx);
  }

  @Patch('notification-preferences')
  @ApiOperation({ operationId: 'updateNotificationPreferences', summary: 'Switch categories on or off per channel, and the e-mail digest (security stays on, its e-mails immediate)' })
  @ApiOkResponse({ type: PreferencesDto })
  @ApiErrorCodes('notification.security_always_on', 'notification.digest_email_only', 'notification.security_immediate', 'notification.preference_repeated')
  updatePreferences(@Tx() tx: TenantTx, @Body() dto: UpdatePreferencesDto): Promise<PreferencesDto> {
    return this.notifications.updatePreferences(tx, dto);
  }
}

/** Seconds between keep-alive comments, so proxies do not close an idle stream. */
const KEEP_ALIVE_MS = 25_000;

/**
 * The live stream holds no transaction (it may stay open for hours): it only listens for pushes made after
 * the routing transaction committed. Authenticated like every route (the access token, or the cookie).
 */
@ApiTags('notifications')
@ApiBearerAuth()
@Controller('v1/me')
export class NotificationStreamController {
  constructor(
    private readonly notifications: NotificationsService,
    private readonly sessions: SessionLiveness,
    private readonly clock: Clock,
    private readonly requests: InFlightRequests,
  ) {}

  @Sse('notifications/stream')
  @UseGuards(NotificationStreamReady)
  @ApiOperation({
    operationId: 'getNotificationStream',
    summary: 'New notices of the signed-in user as server-sent events (event "notification", data: a Notification as JSON), with keep-alives',
    description: 'The stream ends when the access token it was opened with expires: reconnect with a fresh token. It also ends within '
      + 'STREAM_SESSION_CHECK_MS (30 s) of the end of the token\'s session (logout, revocation, a password reset), and a token of an ended session cannot open it.',
  })
  @ApiOkResponse({
    description: 'An event stream: `event: notification` with a Notification as JSON data, and `event: ping` keep-alives',
    content: {
      'text/event-stream': {
        schema: {
          type: 'string', description: 'server-sent events',
          example: 'event: notification\nid: 9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d\ndata: {"id":"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","title":"A payment for Acme failed"}\n\n',
        },
      },
    },
  })
  @ApiErrors(401, 403)
  // not a @UserRoute: that would hold a transaction open for the life of the stream
  @ApiErrorCodes('auth.user_required')
  async stream(@Req() req: FastifyRequest): Promise<Observable<MessageEvent>> {
    // a signed-in user: NotificationStreamReady refused every other caller
    const principal = (req as FastifyRequest & { user: Principal & { kind: 'user' } }).user;
    const notices = (await this.notifications.streamFor(principal.userId)).pipe(map((n): MessageEvent => ({ type: 'notification', id: n.id, data: n })));
    // the stream ends when its access token expires (the client reconnects with a fresh one), and when the token's
    // session ends (seen by the next check of this process's open streams)
    // (a token already expired by the clock ends it at once, before anything is pushed: no zero-delay timer to race);
    // and when the server stops accepting connections at shutdown (requests.closing), not only when the application closes
    // (notifications.closing) after the requests in flight, this one among them, were waited for
    const remaining = principal.expiresAt ? principal.expiresAt * 1000 - this.clock.now() : Infinity;
    const expired = remaining === Infinity ? NEVER : remaining <= 0 ? of(0) : timer(remaining);
    return merge(notices, interval(KEEP_ALIVE_MS).pipe(map((): MessageEvent => ({ type: 'ping', data: {} }))))
      .pipe(takeUntil(merge(this.notifications.closing, this.requests.closing, expired, this.sessions.watch(principal))));
  }
}
