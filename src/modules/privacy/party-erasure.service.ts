import { Injectable } from '@nestjs/common';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { emitEvent } from '../../platform/events/events.js';
import type { OpenTenant } from '../../platform/http/tenant.js';
import { AuditService } from '../audit/audit.service.js';
import { runFinishedAudit, runFinishedEvent } from '../agents/runs.service.js';
import type { PartyErasureDto } from './privacy.dto.js';
import { erasureRepository } from './erasure.repository.js';
import { personalDataKeyRepository } from './personal-data-key.repository.js';
import { PrivacyErrors } from './privacy.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

/**
 * An organization erases a natural-person party (vendor; customer when receivables lands): generic over the
 * party tables of the personal-data catalog. Contact fields are blanked and the name pseudonymized in the
 * organization's own transaction (its policies decide who may); posted documents keep amounts and numbers. Then the
 * AI runs naming it lose their content, on the erasure's privileged path.
 */
@Injectable()
export class PartyErasureService {
  constructor(private readonly audit: AuditService, private readonly clock: Clock, private readonly privileged: PrivilegedDatabase) {}

  async erase(open: OpenTenant, party: string, partyId: string): Promise<PartyErasureDto> {
    const erased = await open(async (tx) => {
      if (!(await erasureRepository.eraseParty(tx.db, party, tx.orgId, partyId))) {
        throw PrivacyErrors.error('privacy.party_not_found', `no ${party} ${partyId} in this organization`);
      }
      const name = await erasureRepository.partyName(tx.db, party, tx.orgId, partyId);
      // crypto-shredding: the party's contact data in earlier audit snapshots now reads as erased
      // refused (the function checks the caller's role itself): the whole erasure rolls back, never audited as done
      if (!(await personalDataKeyRepository.shredPartyKey(tx.db, party, partyId))) {
        throw PlatformErrors.error('forbidden', `the database refused to delete the key of ${party} ${partyId} to this caller: nothing was erased`);
      }
      // audited with ids only: the entry must not carry what was erased
      await this.audit.record(tx, { action: 'party.erased', entityType: party, entityId: partyId, after: { party, erased: true } });
      return { orgId: tx.orgId, principal: tx.principal, meta: tx.meta, name };
    });
    // once that has committed (its policies allowed the erasure; a rolled-back one leaves the runs as they are): the AI runs
    // whose tool results named it (and the answers quoting its name) stop if running and lose their content, on the
    // erasure's privileged path (runs and steps are immutable but for it). A failure here leaves the party erased and
    // audited: the same request again finds it and does this part (nothing else changes twice).
    const { orgId, principal, meta } = erased;
    await this.privileged.run('privacy.erasure', async (db) => {
      const { cancelled, blanked } = await erasureRepository.blankRunsNamingParty(db, orgId, partyId.toLowerCase(), new Date(this.clock.now()));
      // each cancel audited and its event emitted as the person's erasure does them (ErasureService.eraseMe)
      for (const { run, midCall, orgDeleted } of cancelled) {
        if (!midCall && !orgDeleted) await emitEvent({ db, orgId }, ...runFinishedEvent(run));
        await this.audit.recordPrivileged(db, orgId, principal, runFinishedAudit(run), meta);
      }
      // ids and counts only, as the party's erasure
      if (blanked) {
        await this.audit.recordPrivileged(db, orgId, principal,
          { action: 'party.runs_erased', entityType: party, entityId: partyId, after: { party, runsBlanked: blanked, runsCancelled: cancelled.length } }, meta);
      }
    });
    return { party, partyId, name: erased.name, erasedAt: new Date(this.clock.now()).toISOString() };
  }
}
