import { applyDecorators } from '@nestjs/common';
import { IsEmail, ValidateBy, type ValidationArguments } from 'class-validator';

/** C0 controls and DEL: a CR or LF in an address written into an e-mail header adds a header of the sender's choosing. */
const CONTROL = /[\u0000-\u001f\u007f]/;
/**
 * Other controls (C1: U+0085 NEL), format characters (U+200B zero-width space, U+202E right-to-left override, U+FEFF)
 * and the line and paragraph separators (U+2028, U+2029): invisible, or breaking a line, where an address is shown or
 * written; one address can then pass for another (`ad\u200Bmin@`), or a log or mail line be split.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** What is wrong with an address IsEmail accepts, as the app takes addresses; undefined when nothing is. */
function plainAddressProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined; // IsEmail says it
  if (CONTROL.test(value)) return 'must not contain control characters (such as CR or LF)';
  if (INVISIBLE.test(value)) return 'must not contain invisible or line-breaking characters (such as U+200B, U+202E, U+2028)';
  // RFC 5321 lets a quoted local part hold spaces, commas, <> and (escaped) anything: not an address a person signs up
  // with, and one that a mail header or a list of recipients reads otherwise
  if (value.includes('"')) return 'must not have a quoted local part ("...")@';
  return undefined;
}

/**
 * An e-mail address as the app takes it (registration, invitations, e-mail changes; customers' and vendors' contact
 * addresses and an integration's external address, which may be written into mail): IsEmail, and neither
 * control, format (invisible) or line-separator characters nor a quoted local part (IsEmail accepts `"x\r\nBcc: y@evil.test"@example.com`).
 */
export function IsEmailAddress(): PropertyDecorator {
  return applyDecorators(IsEmail(), ValidateBy({
    name: 'isPlainEmailAddress',
    validator: {
      validate: (value: unknown) => plainAddressProblem(value) === undefined,
      defaultMessage: (args?: ValidationArguments) => `${args?.property ?? 'email'} ${plainAddressProblem(args?.value) ?? 'must be an email'}`,
    },
  }));
}
