import { type ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { getMetadataStorage } from 'class-validator';

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
 * PostgreSQL stores no NUL character, neither in text nor in jsonb: one anywhere in the input, in a value or
 * in a JSON key, is refused here, naming the field, rather than failing in the database.
 */
function nulCharacters(value: unknown, field: string, out: FieldProblem[], depth = 0): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) out.push({ field: field || 'body', problems: [`${field || 'body'} must not contain a NUL character (\\u0000)`] });
  } else if (Array.isArray(value)) {
    if (depth < 32) value.forEach((v, i) => nulCharacters(v, join(field, i), out, depth + 1));
  } else if (value !== null && typeof value === 'object' && depth < 32) {
    for (const [key, v] of Object.entries(value)) {
      if (key.includes('\u0000')) out.push({ field: join(field, key.replaceAll('\u0000', '\\u0000')), problems: ['a key must not contain a NUL character (\\u0000)'] });
      else nulCharacters(v, join(field, key), out, depth + 1);
    }
  }
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
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      const nul: FieldProblem[] = [];
      nulCharacters(value, metadata.type === 'param' ? (metadata.data ?? '') : '', nul);
      if (nul.length > 0) throw invalid(nul);
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
