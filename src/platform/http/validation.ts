import { type ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { getMetadataStorage, ValidationTypes, type ValidatorOptions } from 'class-validator';

// @nestjs/swagger keeps each @ApiProperty's options under this key; the document and this check read the same metadata
const API_PROPERTY = 'swagger/apiModelProperties';

interface FieldProblem {
  field: string;
  problems: string[];
}

function flatten(errors: ValidationError[], prefix = ''): FieldProblem[] {
  return errors.flatMap((e) => {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    const own = e.constraints ? [{ field, problems: Object.values(e.constraints) }] : [];
    return [...own, ...flatten(e.children ?? [], field)];
  });
}

function invalid(details: FieldProblem[]): BadRequestException {
  return new BadRequestException({
    code: 'validation_failed',
    message: details.map((d) => d.problems.join(', ')).join('; '),
    details,
  });
}

const join = (prefix: string, key: string | number) => (typeof key === 'number' ? `${prefix}[${key}]` : prefix ? `${prefix}.${key}` : key);

/**
 * How deeply objects and arrays may nest in a body or query, the body itself counting as the first level. Turning
 * JSON into DTOs (class-transformer) recurses once per level without a bound: a 10 KB body of 5,000 nested arrays
 * overflowed the stack, a 500 on any route, public ones included. No field needs a tenth of this (analytics
 * properties, setting values and integration credentials are small JSON objects).
 */
export const MAX_INPUT_DEPTH = 64;

class TooDeep extends Error {
  constructor(readonly field: string) {
    super(field);
  }
}

/**
 * PostgreSQL stores no NUL character, neither in text nor in jsonb: one anywhere in the input, in a value or
 * in a JSON key, is refused here, naming the field, rather than failing in the database. The walk also measures
 * the nesting: an object or array deeper than MAX_INPUT_DEPTH throws TooDeep naming it, before anything recurses
 * over the input without a bound. `depth` is the number of objects and arrays `value` is inside.
 */
function nulCharacters(value: unknown, field: string, out: FieldProblem[], depth = 0): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) out.push({ field: field || 'body', problems: [`${field || 'body'} must not contain a NUL character (\\u0000)`] });
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth >= MAX_INPUT_DEPTH) throw new TooDeep(field || 'body');
  if (Array.isArray(value)) {
    value.forEach((v, i) => nulCharacters(v, join(field, i), out, depth + 1));
  } else {
    for (const [key, v] of Object.entries(value)) {
      if (key.includes('\u0000')) out.push({ field: join(field, key.replaceAll('\u0000', '\\u0000')), problems: ['a key must not contain a NUL character (\\u0000)'] });
      else nulCharacters(v, join(field, key), out, depth + 1);
    }
  }
}

/** The NUL characters of an input, or the first place it nests too deeply (then only that: the rest is not walked). */
function inputProblems(value: unknown, field: string): FieldProblem[] {
  const out: FieldProblem[] = [];
  try {
    nulCharacters(value, field, out);
  } catch (err) {
    if (!(err instanceof TooDeep)) throw err;
    return [{ field: err.field, problems: [`${err.field} is nested too deeply: objects and arrays may nest at most ${MAX_INPUT_DEPTH} levels deep (the body is the first)`] }];
  }
  return out;
}

/** Whether @ApiProperty documents `key` of the class with prototype `proto` as nullable (read once per class and key). */
const nullableKeys = new WeakMap<object, Map<string, boolean>>();
function isNullable(proto: object, key: string): boolean {
  let keys = nullableKeys.get(proto);
  if (!keys) nullableKeys.set(proto, (keys = new Map()));
  let nullable = keys.get(key);
  if (nullable === undefined) {
    nullable = (Reflect.getMetadata(API_PROPERTY, proto, key) as { nullable?: boolean } | undefined)?.nullable === true;
    keys.set(key, nullable);
  }
  return nullable;
}

/**
 * class-validator looks a class's rules up again for every object it validates, scanning every decorated class
 * for parents each time (MetadataStorage.getTargetValidationMetadatas, then groupByPropertyName): in a batch of
 * 1,000 journal entries that is ~3,000 scans over all our DTO classes, a third of the request's CPU (profile in
 * bench/README.md). The rules are fixed once the decorators have run, so the answers are kept per class and
 * options, and forgotten whenever a rule is added (a class decorated later).
 */
function memoizeValidationMetadata(): void {
  type Storage = {
    getTargetValidationMetadatas: (target: unknown, schema: string, always: boolean, strictGroups: boolean, groups?: string[]) => object[];
    groupByPropertyName: (metadata: object[]) => Record<string, object[]>;
    addValidationMetadata: (metadata: object) => void;
    addConstraintMetadata: (metadata: object) => void;
  };
  const storage = getMetadataStorage() as unknown as Storage;
  const lookUp = storage.getTargetValidationMetadatas.bind(storage);
  const group = storage.groupByPropertyName.bind(storage);
  let byTarget = new Map<unknown, Map<string, object[]>>();
  let grouped = new WeakMap<object[], Record<string, object[]>>();
  const forget = () => {
    byTarget = new Map();
    grouped = new WeakMap();
  };
  storage.getTargetValidationMetadatas = (target, schema, always, strictGroups, groups) => {
    const key = `${schema}\u0000${always}\u0000${strictGroups}\u0000${groups?.join('\u0001') ?? ''}`;
    let forTarget = byTarget.get(target);
    if (!forTarget) byTarget.set(target, (forTarget = new Map()));
    let found = forTarget.get(key);
    if (!found) forTarget.set(key, (found = lookUp(target, schema, always, strictGroups, groups)));
    return found;
  };
  storage.groupByPropertyName = (metadata) => {
    let found = grouped.get(metadata);
    if (!found) grouped.set(metadata, (found = group(metadata)));
    return found;
  };
  for (const add of ['addValidationMetadata', 'addConstraintMetadata'] as const) {
    const original = storage[add].bind(storage);
    storage[add] = (metadata) => {
      forget();
      original(metadata);
    };
  }
}
memoizeValidationMetadata();

/** A rule as class-validator's metadata storage holds it (the fields the fast check reads). */
interface RuleMetadata {
  type: string;
  target: object | string;
  propertyName: string;
  constraints: unknown[];
  constraintCls: object;
  each?: boolean;
  validateIf?: (object: object, value: unknown) => boolean;
}
interface ConstraintMetadata {
  async: boolean;
  instance: { validate(value: unknown, args: object): unknown };
}
/** The rules of one property: when they apply (IsOptional, ValidateIf), the checks, whether it holds nested DTOs. */
interface PropertyRules {
  conditions: RuleMetadata[];
  checks: { rule: RuleMetadata; constraints: ConstraintMetadata[] }[];
  nested: RuleMetadata[];
}
type ClassRules = Map<string, PropertyRules>;

const isPromise = (v: unknown) => v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/**
 * A check that a value is valid, in the order and with the functions class-validator uses, without what makes
 * class-validator slow on large bodies (an error object, filtered rule lists and argument objects per property of
 * every object, then pruned; ~40% of the app's CPU for a batch of 100 journal entries). It only ever answers "valid":
 * anything it does not mirror exactly (a rule of another kind, an asynchronous constraint, groups, a Set or Map, an
 * array hole) and any failed check sends the value to class-validator, which then reports the errors as always.
 */
class FastValidityCheck {
  private readonly storage = getMetadataStorage() as unknown as {
    getTargetValidationMetadatas(target: unknown, schema: string | undefined, always: boolean, strictGroups: boolean, groups?: string[]): RuleMetadata[];
    groupByPropertyName(metadata: RuleMetadata[]): Record<string, RuleMetadata[]>;
    getTargetValidatorConstraints(cls: object): ConstraintMetadata[];
  };
  /** per rule list (class-validator's answer for a class, memoized above, so a new rule makes a new list) */
  private readonly compiled = new WeakMap<RuleMetadata[], ClassRules | null>();

  /**
   * Whether options are the ones this check mirrors: unknown properties refused, no groups, nothing skipped. An object of a
   * class without rules is left to class-validator, whatever forbidUnknownValues says.
   */
  applies(options?: ValidatorOptions): boolean {
    return !!options?.whitelist && !!options.forbidNonWhitelisted && !options.groups?.length && !options.always && !options.strictGroups
      && !options.skipMissingProperties && !options.skipNullProperties && !options.skipUndefinedProperties && !options.stopAtFirstError;
  }

  valid(object: unknown, schema?: string): boolean {
    if (object === null || typeof object !== 'object' || Array.isArray(object)) return false;
    const rules = this.rulesOf((object as object).constructor, schema);
    if (!rules) return false;
    const o = object as Record<string, unknown>;
    for (const key of Object.keys(o)) if (!rules.has(key)) return false;
    for (const [property, r] of rules) {
      const value = o[property];
      if (value instanceof Promise) return false;
      if (!r.conditions.every((c) => (c.constraints[0] as (o: object, v: unknown) => boolean)(o, value))) continue;
      for (const { rule, constraints } of r.checks) {
        if (rule.validateIf && !rule.validateIf(o, value)) continue;
        const args = { targetName: o.constructor?.name, property: rule.propertyName, object: o, value, constraints: rule.constraints };
        for (const c of constraints) {
          if (rule.each && (Array.isArray(value) || value instanceof Set || value instanceof Map)) {
            if (!Array.isArray(value)) return false;
            for (const v of value) {
              const ok = c.instance.validate(v, args);
              if (!ok || isPromise(ok)) return false;
            }
          } else {
            const ok = c.instance.validate(value, args);
            if (!ok || isPromise(ok)) return false;
          }
        }
      }
      if (value === undefined) continue;
      for (const rule of r.nested) {
        const nestedSchema = typeof rule.target === 'string' ? rule.target : (rule.target as { name: string }).name;
        if (Array.isArray(value)) {
          for (let i = 0; i < value.length; i++) if (!(i in value) || !this.valid(value[i], nestedSchema)) return false;
        } else if (!this.valid(value, nestedSchema)) {
          return false;
        }
      }
    }
    return true;
  }

  /** The rules of a class, or null when it has none (class-validator refuses an unknown value) or one this check does not mirror. */
  private rulesOf(target: unknown, schema: string | undefined): ClassRules | null {
    const metadata = this.storage.getTargetValidationMetadatas(target, schema, false, false, undefined);
    let rules = this.compiled.get(metadata);
    if (rules === undefined) this.compiled.set(metadata, (rules = this.compile(metadata)));
    return rules;
  }

  private compile(metadata: RuleMetadata[]): ClassRules | null {
    if (!metadata.length) return null;
    const rules: ClassRules = new Map();
    for (const [property, list] of Object.entries(this.storage.groupByPropertyName(metadata))) {
      const r: PropertyRules = { conditions: [], checks: [], nested: [] };
      for (const rule of list) {
        if (rule.type === ValidationTypes.CONDITIONAL_VALIDATION) r.conditions.push(rule);
        else if (rule.type === ValidationTypes.NESTED_VALIDATION) r.nested.push(rule);
        else if (rule.type === ValidationTypes.CUSTOM_VALIDATION) {
          const constraints = this.storage.getTargetValidatorConstraints(rule.constraintCls);
          if (constraints.some((c) => c.async)) return null;
          r.checks.push({ rule, constraints });
        } else if (rule.type !== ValidationTypes.WHITELIST) return null; // IS_DEFINED, PROMISE_VALIDATION: left to class-validator
      }
      rules.set(property, r);
    }
    return rules;
  }
}
const fastCheck = new FastValidityCheck();

/** Whether FastValidityCheck lets `object` skip class-validator under `options` (exported for its test). */
export function passesFastCheck(object: object, options: ValidatorOptions): boolean {
  return fastCheck.applies(options) && fastCheck.valid(object);
}

/**
 * `null` is accepted only where the DTO documents the property as nullable (and there it clears the value);
 * class-validator's @IsOptional() would let it through as if the field were absent. Walks the transformed
 * DTO and its nested DTOs.
 */
function unexpectedNulls(dto: unknown, field: string, out: FieldProblem[], nested = true): void {
  if (Array.isArray(dto)) {
    dto.forEach((v, i) => unexpectedNulls(v, join(field, i), out));
    return;
  }
  if (dto === null || typeof dto !== 'object') return;
  const proto = Object.getPrototypeOf(dto);
  if (!proto || proto === Object.prototype) return; // free-form JSON
  for (const [key, value] of Object.entries(dto)) {
    if (value === null && !isNullable(proto, key)) {
      const name = join(field, key);
      out.push({ field: name, problems: [`${name} must not be null (leave it out to keep the current value)`] });
    } else if (nested && value !== null && typeof value === 'object') {
      unexpectedNulls(value, join(field, key), out);
    }
  }
}

/** Unknown fields are rejected; each invalid field is named in the message and in details. */
class RequestValidationPipe extends ValidationPipe {
  /** A valid body skips class-validator (FastValidityCheck); an invalid one gets class-validator's errors. */
  protected override validate(object: object, options?: ValidatorOptions): Promise<ValidationError[]> | ValidationError[] {
    if (options && passesFastCheck(object, options)) return [];
    return super.validate(object, options);
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      // before super.transform, whose class-transformer recursion a deeply nested input would overflow
      const problems = inputProblems(value, metadata.type === 'param' ? (metadata.data ?? '') : '');
      if (problems.length > 0) throw invalid(problems);
    }
    const nulls: FieldProblem[] = [];
    // the body's own fields first (a missing required field would otherwise hide them), nested DTOs once transformed
    if (metadata.type === 'body' && metadata.metatype && value && typeof value === 'object' && !Array.isArray(value)) {
      unexpectedNulls(Object.assign(Object.create(metadata.metatype.prototype), value), '', nulls, false);
      if (nulls.length > 0) throw invalid(nulls);
    }
    const dto = await super.transform(value, metadata);
    if (metadata.type === 'body') {
      unexpectedNulls(dto, '', nulls);
      if (nulls.length > 0) throw invalid(nulls);
    }
    return dto;
  }
}

export function validationPipe(): ValidationPipe {
  return new RequestValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    exceptionFactory: (errors) => invalid(flatten(errors)),
  });
}
