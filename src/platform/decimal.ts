import { Decimal as DecimalJs } from 'decimal.js';

/**
 * THE decimal class of the app: every Decimal is made by this one (money.ts's `D`, the SQL client's numeric parser,
 * every `new Decimal`), never by decimal.js's own, whose 20 significant digits round the products the app computes:
 * an amount of numeric(20, 4) (20 digits) times a rate of numeric(24, 10) (24 digits) has up to 44, and a line's
 * quantity × price × (100 − discount) up to 20 + 20 + 7. Rounded to 20 first and then to the minor unit, such a
 * product comes out one minor unit off what PostgreSQL's exact `round(amount * rate, 2)` gives (USD 110,000,000.21 at
 * 1.0857142857: 119,428,571.66 against 119,428,571.65), and the aging parts from the control account by it.
 * 100 digits hold every such product exactly and leave quotients more than 30 digits below the minor unit.
 * An operation runs with the precision of its left operand's class: one made elsewhere would bring the 20 back.
 */
export const Decimal = DecimalJs.clone({ precision: 100, rounding: DecimalJs.ROUND_HALF_UP });
export type Decimal = DecimalJs;
// the types decimal.js declares on its class, so that `Decimal.Value` reads as with decimal.js's own import
export declare namespace Decimal {
  type Value = DecimalJs.Value;
  type Rounding = DecimalJs.Rounding;
  type Modulo = DecimalJs.Modulo;
  type Config = DecimalJs.Config;
}
