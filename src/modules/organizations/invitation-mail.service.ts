import { randomBytes } from 'node:crypto';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { sql } from 'kysely';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { qb } from '../../platform/database/query-builder.js';
import { erasedEmail } from '../auth/user.repository.js';
import { JobRegistry } from '../../platform/queue/jobs.js';
import { EmailLinks, queueEmail, type QueuedEmail } from '../notifications/email-delivery.service.js';
import { notificationRepository } from '../notifications/notification.repository.js';
import { hashInvitationToken, INVITATION_CREATED, MAIL_WITHHELD } from './invitations.service.js';

/**
 * The invitation e-mail. The job of INVITATION_CREATED queues it (no token anywhere); when it is sent, a
 * token of its own is minted for the link and only its hash stored (core.invitations.mailed_token_hash,
 * which core.accept_invitation accepts like the token shown to the inviting admin). A resend replaces it. An invitation
 * made past its mailbox's hourly cap (the job's mailWithheld) is not mailed: its e-mail is recorded not_sent, with why.
 */
@Injectable()
export class InvitationMail implements OnModuleInit {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly jobs: JobRegistry,
    private readonly links: EmailLinks,
  ) {}

  onModuleInit(): void {
    this.jobs.register(INVITATION_CREATED, (job) => this.privileged.run('notifications.deliver', async (db) => {
      // once per job (the outbox runs a job at least once)
      if (!(await notificationRepository.receipt(db, job.orgId, job.id, INVITATION_CREATED))) return;
      const invitationId = String(job.payload.invitationId);
      const invitation = await this.pending(db, job.orgId, invitationId);
      if (!invitation) return; // revoked or accepted before the mail went out, or its organization deleted
      const email: QueuedEmail = {
        userId: null, to: invitation.email, template: 'invitation', category: 'organization',
        data: {
          invitationId, role: invitation.role, orgName: invitation.org_name, inviterName: invitation.inviter_name ?? inviterAddress(invitation),
          expiresAt: new Date(invitation.expires_at).toUTCString(),
        },
      };
      if (job.payload.mailWithheld === true) {
        // recorded as the delivery log records every e-mail not sent, in its final state at once (no job: nothing to send)
        await notificationRepository.insertDelivery(db, { orgId: job.orgId, ...email, status: 'not_sent', smtpResponse: MAIL_WITHHELD });
        return;
      }
      await queueEmail({ db, orgId: job.orgId }, email);
    }));
    this.links.register('invitation', async (db, delivery) => {
      const token = randomBytes(32).toString('base64url');
      // not for an organization deleted since the mail was queued: the link would invite to an organization that is gone
      const rows = await db.run(qb.updateTable('core.invitations').set({ mailed_token_hash: hashInvitationToken(token) })
        .where('org_id', '=', delivery.orgId).where('id', '=', String(delivery.data.invitationId))
        .where('accepted_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '>', sql<Date>`now()`)
        .where(({ exists, selectFrom }) => exists(selectFrom('core.organizations as o').select('o.id')
          .whereRef('o.id', '=', 'core.invitations.org_id').where('o.deleted_at', 'is', null)))
        .returning('id'));
      if (rows.length === 0) return undefined;
      const base = this.config.billing.appUrl;
      return `${base}/invitations/accept?org=${delivery.orgId}&token=${encodeURIComponent(token)}`;
    });
  }

  private async pending(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('core.invitations as i')
      // a deleted organization's invitation is not mailed (deleting it revokes them; a member's erasure deletes it alone)
      .innerJoin('core.organizations as o', (j) => j.onRef('o.id', '=', 'i.org_id').on('o.deleted_at', 'is', null))
      .leftJoin('core.User as u', 'u.id', 'i.invited_by')
      .select(['i.email', 'i.role', 'i.expires_at', 'i.invited_by', 'o.name as org_name', 'u.name as inviter_name', 'u.email as inviter_email'])
      .where('i.org_id', '=', orgId).where('i.id', '=', id)
      .where('i.accepted_at', 'is', null).where('i.revoked_at', 'is', null).where('i.expires_at', '>', sql<Date>`now()`));
    return row;
  }
}

/**
 * The inviter's address, named in the mail when they have no name; none once they are erased (their account keeps the
 * pseudonym erasedEmail: a mail queued after the erasure, its job still pending then, would show it).
 */
function inviterAddress(i: { invited_by: string | null; inviter_email: string | null }): string | null {
  return i.inviter_email && i.invited_by && i.inviter_email !== erasedEmail(i.invited_by) ? i.inviter_email : null;
}
