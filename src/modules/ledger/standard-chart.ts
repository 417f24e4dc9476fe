/** The standard chart of accounts installed when an organization starts its books. */
export interface TemplateAccount {
  code: string;
  name: string;
  type: 'asset' | 'liability' | 'equity' | 'revenue' | 'expense';
  parent?: string;
  group?: boolean;
  /** cash-flow statement section (finance.accounts.cash_flow_class); unset: the nearest classified group's, else by type */
  cashFlow?: 'cash' | 'operating' | 'investing' | 'financing';
}

export const STANDARD_CHART: TemplateAccount[] = [
  { code: '1000', name: 'Assets', type: 'asset', group: true },
  // bank and cash accounts go under 1050: a new one added there without a class of its own is cash in the cash-flow statement
  { code: '1050', name: 'Cash and cash equivalents', type: 'asset', parent: '1000', group: true, cashFlow: 'cash' },
  { code: '1100', name: 'Cash at bank', type: 'asset', parent: '1050', cashFlow: 'cash' },
  { code: '1200', name: 'Accounts receivable', type: 'asset', parent: '1000' },
  { code: '1300', name: 'Input tax receivable', type: 'asset', parent: '1000' },
  { code: '1400', name: 'Inventory', type: 'asset', parent: '1000' },
  { code: '1500', name: 'Equipment', type: 'asset', parent: '1000', cashFlow: 'investing' },
  { code: '2000', name: 'Liabilities', type: 'liability', group: true },
  { code: '2100', name: 'Accounts payable', type: 'liability', parent: '2000' },
  { code: '2200', name: 'Output tax payable', type: 'liability', parent: '2000' },
  { code: '2300', name: 'Loans', type: 'liability', parent: '2000', cashFlow: 'financing' },
  { code: '3000', name: 'Equity', type: 'equity', group: true },
  { code: '3100', name: 'Share capital', type: 'equity', parent: '3000', cashFlow: 'financing' },
  { code: '3200', name: 'Retained earnings', type: 'equity', parent: '3000' },
  { code: '4000', name: 'Revenue', type: 'revenue', group: true },
  { code: '4100', name: 'Sales', type: 'revenue', parent: '4000' },
  { code: '4200', name: 'Other income', type: 'revenue', parent: '4000' },
  { code: '4300', name: 'Foreign exchange gains', type: 'revenue', parent: '4000' },
  { code: '4310', name: 'Unrealized foreign exchange gains', type: 'revenue', parent: '4000' },
  { code: '5000', name: 'Expenses', type: 'expense', group: true },
  { code: '5100', name: 'Cost of goods sold', type: 'expense', parent: '5000' },
  { code: '5200', name: 'Rent', type: 'expense', parent: '5000' },
  { code: '5300', name: 'Salaries', type: 'expense', parent: '5000' },
  { code: '5400', name: 'Bank fees', type: 'expense', parent: '5000' },
  { code: '5500', name: 'Foreign exchange losses', type: 'expense', parent: '5000' },
  { code: '5510', name: 'Unrealized foreign exchange losses', type: 'expense', parent: '5000' },
  { code: '5600', name: 'Rounding differences', type: 'expense', parent: '5000' },
];

/** Which template accounts the settings point at. */
export const STANDARD_ROLES = { rounding: '5600', retainedEarnings: '3200', fxGain: '4300', fxLoss: '5500', fxUnrealizedGain: '4310', fxUnrealizedLoss: '5510' } as const;
