import Handlebars from 'handlebars';

/**
 * The e-mail of each notification type: a subject, a plain-text part and an HTML part, as Handlebars
 * templates. The HTML part escapes every value (`{{x}}`); the text part and subject do not escape
 * (plain text has nothing to escape). Links with tokens are filled in by the sending job only
 * (`link`): templates' data stored in core.email_deliveries never holds a token.
 */
export const EMAIL_TEMPLATES = {
  invitation: {
    subject: 'You are invited to join {{orgName}} on OmniZen',
    text: '{{#if inviterName}}{{inviterName}} invited you{{else}}You are invited{{/if}} to join {{orgName}} on OmniZen as {{role}}.\n\n'
      + 'Accept the invitation (sign in or create an account with this e-mail address first):\n{{link}}\n\nThe invitation expires on {{expiresAt}}.\n',
    html: '<p>{{#if inviterName}}{{inviterName}} invited you{{else}}You are invited{{/if}} to join <strong>{{orgName}}</strong> on OmniZen as {{role}}.</p>'
      + '<p><a href="{{link}}">Accept the invitation</a> (sign in or create an account with this e-mail address first).</p>'
      + '<p>The invitation expires on {{expiresAt}}.</p>',
  },
  password_reset: {
    subject: 'Reset your OmniZen password',
    text: 'Someone asked to reset the password of your OmniZen account. If it was you, choose a new password within {{ttlMinutes}} minutes:\n{{link}}\n\n'
      + 'Resetting signs you out everywhere. If it was not you, ignore this message: your password stays as it is.\n',
    html: '<p>Someone asked to reset the password of your OmniZen account. If it was you, '
      + '<a href="{{link}}">choose a new password</a> within {{ttlMinutes}} minutes.</p>'
      + '<p>Resetting signs you out everywhere. If it was not you, ignore this message: your password stays as it is.</p>',
  },
  email_verification: {
    subject: 'Verify your e-mail address for OmniZen',
    text: 'Confirm that this is your e-mail address (signed in to the account you registered):\n{{link}}\n\nThe link is valid for {{ttlHours}} hours.\n',
    html: '<p><a href="{{link}}">Confirm that this is your e-mail address</a> (signed in to the account you registered).</p><p>The link is valid for {{ttlHours}} hours.</p>',
  },
  email_change_confirm: {
    subject: 'Confirm your new e-mail address for OmniZen',
    text: 'Your OmniZen account asked to use this address ({{newEmail}}) instead of {{oldEmail}}. Confirm it within {{ttlHours}} hours:\n{{link}}\n',
    html: '<p>Your OmniZen account asked to use this address ({{newEmail}}) instead of {{oldEmail}}. '
      + '<a href="{{link}}">Confirm it</a> within {{ttlHours}} hours.</p>',
  },
  email_change_notice: {
    subject: 'Your OmniZen e-mail address was changed',
    text: 'The e-mail address of your OmniZen account was changed from {{oldEmail}} to {{newEmail}}. If you did not do this, contact support at once.\n',
    html: '<p>The e-mail address of your OmniZen account was changed from {{oldEmail}} to {{newEmail}}. If you did not do this, contact support at once.</p>',
  },
  sign_in_method_added: {
    subject: 'A new way to sign in to your OmniZen account',
    text: 'A {{provider}} sign-in ({{identityEmail}}) was added to your OmniZen account on {{addedAt}}. It can now sign in to your account.\n\n'
      + 'If you did not do this, remove it at once in your account\'s sign-in settings, reset your password and contact support.\n',
    html: '<p>A {{provider}} sign-in ({{identityEmail}}) was added to your OmniZen account on {{addedAt}}. It can now sign in to your account.</p>'
      + '<p>If you did not do this, remove it at once (in your account\'s sign-in settings), reset your password and contact support.</p>',
  },
  sign_in_method_removed: {
    subject: 'A way to sign in to your OmniZen account was removed',
    text: 'The {{provider}} sign-in ({{identityEmail}}) was removed from your OmniZen account on {{removedAt}}. '
      + 'If you did not do this, reset your password and contact support.\n',
    html: '<p>The {{provider}} sign-in ({{identityEmail}}) was removed from your OmniZen account on {{removedAt}}. '
      + 'If you did not do this, reset your password and contact support.</p>',
  },
  account_claimed: {
    subject: 'Security notice: your e-mail address was confirmed for your OmniZen account',
    text: 'Your e-mail address was confirmed for your OmniZen account on {{claimedAt}} ({{via}}). Nobody had confirmed it before, '
      + 'so someone else may have registered the account with your address and set it up. To be safe, what could reach into '
      + 'the account or send its data out was cleared, and every other session was signed out:\n'
      + '{{#each cleared}}- {{this}}\n{{else}}- nothing had been set up\n{{/each}}\n'
      + 'Your account is a member of these organizations:\n{{#each organizations}}- {{name}} ({{role}}{{#if personal}}, your personal organization{{/if}})\n{{/each}}\n'
      + 'If you do not recognise one of them, leave it at once (in the organization\'s members settings) and contact support. '
      + 'You may enable again what was disabled if you set it up yourself.\n',
    html: '<p>Your e-mail address was confirmed for your OmniZen account on {{claimedAt}} ({{via}}). Nobody had confirmed it before, '
      + 'so someone else may have registered the account with your address and set it up. To be safe, what could reach into '
      + 'the account or send its data out was cleared, and every other session was signed out:</p>'
      + '<ul>{{#each cleared}}<li>{{this}}</li>{{else}}<li>nothing had been set up</li>{{/each}}</ul>'
      + '<p>Your account is a member of these organizations:</p><ul>{{#each organizations}}<li><strong>{{name}}</strong> ({{role}}{{#if personal}}, your personal organization{{/if}})</li>{{/each}}</ul>'
      + '<p>If you do not recognise one of them, leave it at once (in the organization\'s members settings) and contact support. '
      + 'You may enable again what was disabled if you set it up yourself.</p>',
  },
  notice: {
    subject: '{{title}}',
    text: '{{body}}\n\nSee it in OmniZen: {{link}}\n\nManage which notices you receive: {{preferencesLink}}\n',
    html: '<p>{{body}}</p><p><a href="{{link}}">See it in OmniZen</a></p><p><a href="{{preferencesLink}}">Manage which notices you receive</a></p>',
  },
  digest: {
    subject: '{{count}} new {{category}} notice(s) on OmniZen',
    text: '{{#each items}}- {{title}}: {{body}}\n{{/each}}\nSee them in OmniZen: {{link}}\n\nManage which notices you receive: {{preferencesLink}}\n',
    html: '<ul>{{#each items}}<li><strong>{{title}}</strong>: {{body}}</li>{{/each}}</ul><p><a href="{{link}}">See them in OmniZen</a></p>'
      + '<p><a href="{{preferencesLink}}">Manage which notices you receive</a></p>',
  },
} as const;

export type EmailTemplate = keyof typeof EMAIL_TEMPLATES;
export const EMAIL_TEMPLATE_NAMES = Object.keys(EMAIL_TEMPLATES) as EmailTemplate[];

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const handlebars = Handlebars.create();
const compiled = new Map<string, { subject: HandlebarsTemplateDelegate; text: HandlebarsTemplateDelegate; html: HandlebarsTemplateDelegate }>();

function templatesOf(name: EmailTemplate) {
  let t = compiled.get(name);
  if (!t) {
    const source = EMAIL_TEMPLATES[name];
    t = {
      subject: handlebars.compile(source.subject, { noEscape: true, strict: false }),
      text: handlebars.compile(source.text, { noEscape: true }),
      html: handlebars.compile(`<!doctype html><html><body style="font-family:sans-serif">${source.html}</body></html>`),
    };
    compiled.set(name, t);
  }
  return t;
}

export function renderEmail(name: EmailTemplate, data: Record<string, unknown>): RenderedEmail {
  const t = templatesOf(name);
  // a subject is one line: a value with a line break must not add headers
  return { subject: t.subject(data).replace(/[\r\n]+/g, ' ').slice(0, 250), text: t.text(data), html: t.html(data) };
}

const routeTemplates = new Map<string, HandlebarsTemplateDelegate>();

/** A notice's title or body from its route's template (core.notification_routes), over the event payload. Plain text. */
export function renderRouteText(template: string, data: Record<string, unknown>): string {
  let t = routeTemplates.get(template);
  if (!t) {
    t = handlebars.compile(template, { noEscape: true });
    routeTemplates.set(template, t);
  }
  return t(data);
}
