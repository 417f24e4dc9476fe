import { applyDecorators } from '@nestjs/common';
import { Matches } from 'class-validator';

// The money fields of the ledger, receivables and payables requests: one pattern and one message per kind of value,
// so the three modules accept the same forms and refuse them in the same words. The patterns bound the size
// (a 400 naming the field, never a numeric overflow in the database); the services check what depends on the
// document: the currency's minor units, zero amounts and rates, percents above 100.

/** A non-negative decimal string: up to 14 digits and 4 decimals (numeric(18, 4)). */
export const AMOUNT = /^\d{1,14}(\.\d{1,4})?$/;
/** An exchange rate: base units per unit of a currency, up to 12 digits and 10 decimals (numeric(24, 10)). */
export const RATE = /^\d{1,12}(\.\d{1,10})?$/;
/** A percent (a tax rate, a discount): up to 3 digits and 4 decimals (numeric(9, 4)); above 100 the services refuse it. */
export const PERCENT = /^\d{1,3}(\.\d{1,4})?$/;
/** A line quantity; the sign passes here so that a negative one gets the service's message (a quantity must be positive). */
export const QUANTITY = /^-?\d{1,14}(\.\d{1,4})?$/;
/** An ISO 4217 currency code; whether the currency exists is the ledger's (currencies table) to say. */
export const CURRENCY = /^[A-Z]{3}$/;

/** How a customer or vendor payment (or refund) was made; the payment tables' CHECK lists the same. */
export const PAYMENT_METHODS = ['bank_transfer', 'card', 'cash', 'check', 'other'] as const;

/** The 400 message of an amount field, e.g. `amountMsg('total')` (for `@Matches(AMOUNT, ...)`). */
export const amountMsg = (field: string) => ({ message: `${field} must be a non-negative decimal string with at most 4 decimals, e.g. "120.50"` });
export const rateMsg = (field: string) => ({ message: `${field} must be a positive decimal string with at most 10 decimals` });
export const percentMsg = (field: string) => ({ message: `${field} must be a percent between 0 and 100 with at most 4 decimals, e.g. "20" or "7.5"` });
export const quantityMsg = (field: string) => ({ message: `${field} must be a decimal string with at most 4 decimals, e.g. "2.5"` });
export const currencyMsg = (field: string) => ({ message: `${field} must be an ISO 4217 code like EUR` });

/** An amount field, refused with a message naming `field`. */
export const Amount = (field: string): PropertyDecorator => applyDecorators(Matches(AMOUNT, amountMsg(field)));
/** An exchange rate field, refused with a message naming `field`. */
export const Rate = (field: string): PropertyDecorator => applyDecorators(Matches(RATE, rateMsg(field)));
/** A percent field, refused with a message naming `field`. */
export const Percent = (field: string): PropertyDecorator => applyDecorators(Matches(PERCENT, percentMsg(field)));
/** A quantity field, refused with a message naming `field`. */
export const Quantity = (field: string): PropertyDecorator => applyDecorators(Matches(QUANTITY, quantityMsg(field)));
/** A currency code field, refused with a message naming `field`. */
export const Currency = (field: string): PropertyDecorator => applyDecorators(Matches(CURRENCY, currencyMsg(field)));
