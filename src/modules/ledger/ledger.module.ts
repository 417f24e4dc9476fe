import { Module } from '@nestjs/common';

/** Chart of accounts, journal entries, balances, periods, currencies and FX, tax codes, statements (issue 4). */
@Module({})
export class LedgerModule {}
