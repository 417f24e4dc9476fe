import { Injectable } from '@nestjs/common';
import { Clock } from '../../platform/clock/clock.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';
import type { PartyErasureDto } from './privacy.dto.js';
import { erasureRepository } from './erasure.repository.js';
import { personalDataKeyRepository } from './personal-data-key.repository.js';
import { PrivacyErrors } from './privacy.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

/**
 * An organization erases a natural-person party (vendor; customer when receivables lands): generic over the
 * party tables of the personal-data catalog. Contact fields are blanked and the name pseudonymized in the
 * organization's own transaction (its policies decide who may); posted documents keep amounts and numbers.
 */
@Injectable()
export class PartyErasureService {
  constructor(private readonly audit: AuditService, private readonly clock: Clock, private readonly privileged: PrivilegedDatabase) {}

  async erase(tx: TenantTx, party: string, partyId: string): Promise<PartyErasureDto> {
    const erased = await erasureRepository.eraseParty(tx.db, party, tx.orgId, partyId);
    if (!erased) throw PrivacyErrors.error('privacy.party_not_found', `no ${party} ${partyId} in this organization`);
    const name = await erasureRepository.partyName(tx.db, party, tx.orgId, partyId);
    // crypto-shredding: the party's contact data in earlier audit snapshots now reads as erased
    // refused (the function checks the caller's role itself): the whole erasure rolls back, never audited as done
    if (!(await personalDataKeyRepository.shredPartyKey(tx.db, party, partyId))) {
      throw PlatformErrors.error('forbidden', `the database refused to delete the key of ${party} ${partyId} to this caller: nothing was erased`);
    }
    // the AI runs whose tool results named it (and the answers quoting its name): their content goes, on the erasure's
    // privileged path (runs and steps are immutable but for it), once this transaction's policies allowed the erasure
    await this.privileged.run('privacy.erasure', (db) => erasureRepository.blankRunsNamingParty(db, tx.orgId, partyId.toLowerCase()));
    // audited with ids only: the entry must not carry what was erased
    await this.audit.record(tx, { action: 'party.erased', entityType: party, entityId: partyId, after: { party, erased: true } });
    return { party, partyId, name, erasedAt: new Date(this.clock.now()).toISOString() };
  }
}
