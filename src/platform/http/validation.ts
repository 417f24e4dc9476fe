import { type ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { getMetadataStorage, IS_UUID, ValidationTypes, type ValidatorOptions } from 'class-validator';
import { UUID } from './uuid.js';

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

/** What walking an input found: its problems, and whether it holds a key Nest's ValidationPipe deletes in place. */
interface InputWalk {
  problems: FieldProblem[];
  /** a `constructor` or `prototype` key somewhere (see RequestValidationPipe.transform) */
  strippedKeys: boolean;
}

/** String.prototype.isWellFormed (ES2024: Node has it, the es2023 lib does not declare it). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const NOT_WELL_FORMED = 'must be well-formed Unicode: it has an unpaired UTF-16 surrogate (\\uD800-\\uDFFF alone)';

/**
 * PostgreSQL stores no NUL character, neither in text nor in jsonb: one anywhere in the input, in a value or
 * in a JSON key, is refused here, naming the field, rather than failing in the database. A key `__proto__` is refused
 * too, naming it: JSON.parse makes it an own property, but copied with `=` or Object.assign it would replace the
 * prototype of the object copied into (the JSON body parser refuses it already; this holds for every input the pipe
 * sees, so that keepFreeFormJson can keep the input's objects as they are). The walk also measures the nesting: an
 * object or array deeper than MAX_INPUT_DEPTH throws TooDeep naming it, before anything recurses over the input
 * without a bound. `depth` is the number of objects and arrays `value` is inside. A string (or key) that is not
 * well-formed Unicode, an unpaired UTF-16 surrogate (JSON allows `"\ud800"`), is refused too, naming the field: UTF-8
 * cannot encode it, so it was stored as U+FFFD with a 200 and the client's value changed without an error.
 */
function walkInput(value: unknown, field: string, walk: InputWalk, depth = 0): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) walk.problems.push({ field: field || 'body', problems: [`${field || 'body'} must not contain a NUL character (\\u0000)`] });
    if (!wellFormed(value)) walk.problems.push({ field: field || 'body', problems: [`${field || 'body'} ${NOT_WELL_FORMED}`] });
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth >= MAX_INPUT_DEPTH) throw new TooDeep(field || 'body');
  if (Array.isArray(value)) {
    value.forEach((v, i) => walkInput(v, join(field, i), walk, depth + 1));
  } else {
    for (const [key, v] of Object.entries(value)) {
      if (key.includes('\u0000')) walk.problems.push({ field: join(field, key.replaceAll('\u0000', '\\u0000')), problems: ['a key must not contain a NUL character (\\u0000)'] });
      else if (!wellFormed(key)) walk.problems.push({ field: join(field, key.replace(/\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}`)), problems: [`a key ${NOT_WELL_FORMED}`] });
      else if (key === '__proto__') walk.problems.push({ field: join(field, key), problems: [`${join(field, key)} is not accepted: no key may be named __proto__`] });
      else {
        if (key === 'constructor' || key === 'prototype') walk.strippedKeys = true;
        walkInput(v, join(field, key), walk, depth + 1);
      }
    }
  }
}

/** The problems of an input (NUL characters, unpaired surrogates, `__proto__` keys), or the first place it nests too deeply (then only that: the rest is not walked). */
function walkedInput(value: unknown, field: string): InputWalk {
  const walk: InputWalk = { problems: [], strippedKeys: false };
  try {
    walkInput(value, field, walk);
  } catch (err) {
    if (!(err instanceof TooDeep)) throw err;
    return { problems: [{ field: err.field, problems: [`${err.field} is nested too deeply: objects and arrays may nest at most ${MAX_INPUT_DEPTH} levels deep (the body is the first)`] }], strippedKeys: false };
  }
  return walk;
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

/**
 * class-transformer builds the DTO's free-form JSON (a property typed object, Record or unknown, without @Type) anew,
 * and skips every key named like a member of Object.prototype on the way (constructor, toString, valueOf,
 * hasOwnProperty...): `{"properties":{"constructor":"x","toString":"y"}}` was stored as `{}` with a 2xx. So each
 * free-form value (a plain object class-transformer made) is replaced by the input's own, exactly as parsed: its keys
 * are own data properties, its prototype Object.prototype (a `__proto__` key was refused by walkInput). On a DTO itself
 * such a key is refused like any unknown property (class-transformer dropped it before whitelisting saw it).
 * `dto` is what class-transformer made of `raw`; answers the value to keep.
 */
function keepFreeFormJson(dto: unknown, raw: unknown, field: string, out: FieldProblem[]): unknown {
  if (dto === null || typeof dto !== 'object' || raw === null || typeof raw !== 'object') return dto;
  if (Array.isArray(dto)) {
    if (Array.isArray(raw)) for (let i = 0; i < dto.length; i++) dto[i] = keepFreeFormJson(dto[i], raw[i], join(field, i), out);
    return dto;
  }
  if (Object.getPrototypeOf(dto) === Object.prototype) return Array.isArray(raw) ? dto : raw;
  const d = dto as Record<string, unknown>;
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (Object.hasOwn(d, key)) d[key] = keepFreeFormJson(d[key], r[key], join(field, key), out);
    else if (key in d) out.push({ field: join(field, key), problems: [`property ${key} should not exist`] });
  }
  return dto;
}

/** Where a DTO class holds UUIDs (@IsUUID, `each` for an array of them) and nested DTOs (@ValidateNested). */
interface UuidPlaces {
  uuids: { property: string; each: boolean }[];
  nested: string[];
}
const uuidPlaces = new WeakMap<object, UuidPlaces>();
function uuidPlacesOf(target: object): UuidPlaces {
  let places = uuidPlaces.get(target);
  if (!places) {
    const storage = getMetadataStorage() as unknown as { getTargetValidationMetadatas(target: unknown, schema: string | undefined, always: boolean, strictGroups: boolean): (RuleMetadata & { name?: string })[] };
    const rules = storage.getTargetValidationMetadatas(target, undefined, false, false);
    places = {
      uuids: rules.filter((r) => r.name === IS_UUID).map((r) => ({ property: r.propertyName, each: !!r.each })),
      nested: [...new Set(rules.filter((r) => r.type === ValidationTypes.NESTED_VALIDATION).map((r) => r.propertyName))],
    };
    uuidPlaces.set(target, places);
  }
  return places;
}

/**
 * UUIDs reach the services in one spelling, lower case (PostgreSQL's): @IsUUID accepts upper case, and a service that
 * keys a map or compares by id would take one id spelled two ways for two (one invoice allocated twice, a vendor taken
 * for another). Lower-cases, in place, every property of a validated DTO (and of its nested DTOs) that @IsUUID checked.
 */
function canonicalUuids(dto: unknown): void {
  if (Array.isArray(dto)) {
    for (const v of dto) canonicalUuids(v);
    return;
  }
  if (dto === null || typeof dto !== 'object') return;
  const proto = Object.getPrototypeOf(dto);
  if (!proto || proto === Object.prototype) return; // free-form JSON
  const places = uuidPlacesOf(proto.constructor);
  const d = dto as Record<string, unknown>;
  for (const { property, each } of places.uuids) {
    const v = d[property];
    if (typeof v === 'string') d[property] = v.toLowerCase();
    else if (each && Array.isArray(v)) d[property] = v.map((x) => (typeof x === 'string' ? x.toLowerCase() : x));
  }
  for (const property of places.nested) canonicalUuids(d[property]);
}

/**
 * A path parameter that names a resource by id (`id`, `accountId`, `orgId`...): a UUID in it is taken in lower case, as in a
 * body. Not `userId`: core."User".id is text that other apps write (seed 000: a UUID in whatever case they write it),
 * matched as written.
 */
const isIdParam = (name: string | undefined) => !!name && name !== 'userId' && (name === 'id' || name.endsWith('Id'));

/** Unknown fields are rejected; each invalid field is named in the message and in details. */
class RequestValidationPipe extends ValidationPipe {
  /** A valid body skips class-validator (FastValidityCheck); an invalid one gets class-validator's errors. */
  protected override validate(object: object, options?: ValidatorOptions): Promise<ValidationError[]> | ValidationError[] {
    if (options && passesFastCheck(object, options)) return [];
    return super.validate(object, options);
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    let input = value;
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      // before super.transform, whose class-transformer recursion a deeply nested input would overflow
      const walk = walkedInput(value, metadata.type === 'param' ? (metadata.data ?? '') : '');
      if (walk.problems.length > 0) throw invalid(walk.problems);
      // super.transform deletes every `constructor` and `prototype` key of the input in place (class-transformer would
      // take a `constructor` value for the class to build): keepFreeFormJson then takes free-form JSON from a copy (the
      // input is JSON, or strings from a query or path, and JSON.parse builds it as the body parser did)
      if (walk.strippedKeys) input = JSON.parse(JSON.stringify(value));
    }
    const nulls: FieldProblem[] = [];
    // the body's own fields first (a missing required field would otherwise hide them), nested DTOs once transformed
    if (metadata.type === 'body' && metadata.metatype && value && typeof value === 'object' && !Array.isArray(value)) {
      unexpectedNulls(Object.assign(Object.create(metadata.metatype.prototype), value), '', nulls, false);
      if (nulls.length > 0) throw invalid(nulls);
    }
    let dto = await super.transform(value, metadata);
    if (metadata.type === 'body' || metadata.type === 'query') {
      const dropped: FieldProblem[] = [];
      dto = keepFreeFormJson(dto, input, '', dropped);
      if (dropped.length > 0) throw invalid(dropped);
    }
    if (metadata.type === 'body') {
      unexpectedNulls(dto, '', nulls);
      if (nulls.length > 0) throw invalid(nulls);
    }
    if (metadata.type === 'body' || metadata.type === 'query') canonicalUuids(dto);
    else if (metadata.type === 'param' && isIdParam(metadata.data) && typeof dto === 'string' && UUID.test(dto)) dto = dto.toLowerCase();
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
