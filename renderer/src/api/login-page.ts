// The two plain screens of the web host login (plain DOM: they show before React renders the app):
// a message (a refused or spent code) and a form asking for the code `tidemark serve` printed.

function screen(root: HTMLElement, message: string): HTMLElement {
  const main = document.createElement('main');
  main.className = 'login';
  const title = document.createElement('h1');
  title.textContent = 'Tidemark';
  const text = document.createElement('p');
  text.setAttribute('role', 'alert');
  text.textContent = message;
  main.append(title, text);
  root.replaceChildren(main);
  return main;
}

/** Replaces the page with `message` (plain text, never HTML). */
export function showLoginMessage(root: HTMLElement, message: string): void {
  screen(root, message);
}

/** Shows the code form (with the previous refusal, if any) and resolves with what the user entered. */
export function askForCode(root: HTMLElement, error?: string): Promise<string> {
  const main = screen(root, error ?? 'Paste the login code that `tidemark serve` printed (or open the address it printed).');
  const form = document.createElement('form');
  const label = document.createElement('label');
  label.textContent = 'Login code ';
  const input = document.createElement('input');
  input.name = 'code';
  input.type = 'password'; // not kept by form autofill history, not shown over a shoulder
  input.autocomplete = 'off';
  input.required = true;
  label.append(input);
  const button = document.createElement('button');
  button.type = 'submit';
  button.textContent = 'Log in';
  form.append(label, button);
  main.append(form);
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (input.value.trim()) resolve(input.value);
    });
  });
}
