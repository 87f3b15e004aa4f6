// Entry point: one API (Electron preload bridge or the web host's WebSocket), one store fed by its
// events, one React root. In a browser the page logs in to the web host first (web-login.ts).

import { createRoot } from 'react-dom/client';
import { App } from './App';
import { createApi } from './api';
import { askForCode, showLoginMessage } from './api/login-page';
import { webLogin } from './api/web-login';
import { StoreProvider } from './store/context';
import { createStore } from './store/store';
import './styles.css';

async function boot(root: HTMLElement): Promise<void> {
  if (!window.api) {
    const login = await webLogin({ location: window.location, history: window.history, fetch: (i, init) => window.fetch(i, init) }, (error) => askForCode(root, error));
    if (!login.ok) return showLoginMessage(root, login.message);
    root.replaceChildren();
  }
  const store = createStore(createApi());
  void store.getState().start();
  createRoot(root).render(
    <StoreProvider store={store}>
      <App />
    </StoreProvider>,
  );
}

void boot(document.getElementById('root')!);
